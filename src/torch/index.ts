// The engine: libtorch tensors, nn, optim and checkpoints for TypeScript.
export * from './compute';
export * from './serialization/safetensors';
export { loadTorch, loadTorchStateDict } from './serialization/torch-load';
export * from './precision';
