export * from './registry.ts';
export * from './keys.ts';
export * from './migrations.ts';
