export * from './hub.ts';
export * from './settlement-service.ts';
export * from './announcements.ts';
export * from './card-authorizer.ts';
export * from './input-error.ts';
export * from './engine-ids.ts';
export * from './data-dir-lock.ts';
export * from './errors.ts';
