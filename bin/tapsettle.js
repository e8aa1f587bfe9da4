#!/usr/bin/env node
// `npx tapsettle …`: run the TypeScript entry through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
await import('./tapsettle.ts');
