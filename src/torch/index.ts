// The engine: libtorch tensors, nn, optim and checkpoints for TypeScript.
export * from './tensor';
export * as F from './functional';
export * as nn from './nn';
export * as optim from './optim';
export * from './serialization/safetensors';
export { loadTorch, loadTorchStateDict } from './serialization/torch-load';
export { native, defaultThreads } from './native';
