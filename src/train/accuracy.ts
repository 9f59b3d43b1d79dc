// Accuracy from predictions and labels: plain arithmetic, shared by test metrics and defenses.

export function accuracyOf(preds: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (preds.length !== labels.length) throw new Error(`accuracy: ${preds.length} predictions for ${labels.length} labels`);
  if (preds.length === 0) return NaN;
  let right = 0;
  for (let i = 0; i < preds.length; i++) if (preds[i] === labels[i]) right++;
  return right / preds.length;
}

export function perClassAccuracy(preds: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[] {
  const right = new Array(classes).fill(0), total = new Array(classes).fill(0);
  for (let i = 0; i < labels.length; i++) {
    total[labels[i]]++;
    if (preds[i] === labels[i]) right[labels[i]]++;
  }
  return right.map((r, c) => (total[c] ? r / total[c] : NaN));
}
