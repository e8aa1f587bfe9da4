export * from './catalog.ts';
export * from './restrictions.ts';
export * from './fare-tables.ts';
export * from './tickets.ts';
export * from './offline-policy.ts';
