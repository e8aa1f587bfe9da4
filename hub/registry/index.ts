export * from './registry.ts';
export * from './keys.ts';
export * from './hub-keyring.ts';
export * from './migrations.ts';
