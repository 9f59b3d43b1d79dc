// The engine without checkpoints: tensors, functional, nn and optim, all in memory. Defenses import
// this entry, not ../torch, because checkpoint loading and saving reach the file system.
export * from './tensor';
export * as F from './functional';
export * as nn from './nn';
export * as optim from './optim';
export { native, defaultThreads } from './native';
