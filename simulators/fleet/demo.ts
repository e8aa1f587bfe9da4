/**
 * The whole system on one machine (`npm start`): the hub (SQLite ledger in the data folder,
 * embedded aedes broker on a free port), the operator dashboard, the demo site's terminals and
 * simulated customers. `close()` stops them in reverse order, so the ledger closes last.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_MAX_SKEW_MS, fromHex, hubKeysTrustedAt } from '../../protocol/index.ts';
import type { PayoutRetryOptions } from '../../hub/clearing/payouts.ts';
import { startAdminServer } from '../../hub/admin/admin-channel.ts';
import { adminRunnerFor } from '../../hub/cli/main.ts';
import { createHubSource, type HubSource } from '../../hub/dashboard/hub-source.ts';
import { instrumentHandler } from '../../hub/dashboard/instrument.ts';
import { LiveMeter } from '../../hub/dashboard/live-meter.ts';
import { startDashboard, type Dashboard } from '../../hub/dashboard/server.ts';
import { createHubServer, type HubServer } from '../../hub/mqtt/hub-server.ts';
import { createHub, type Hub } from '../../hub/service/hub.ts';
import { WorkerVerifier } from '../../hub/verify/worker-verifier.ts';
import { isSocatAvailable } from '../pn532-emulator/pty-pair.ts';
import { startCustomers, type CustomerEvent, type CustomerSim } from './customers.ts';
import { DEMO_TERMINALS } from './demo-data.ts';
import { claimDemoDataDir, openDemoSite } from './demo-site.ts';
import { DEMO_OPERATOR, startRuntimeTerminal } from './runtime-terminal.ts';
import { startDirectTerminal, type SiteTerminal } from './site-terminal.ts';

export { DemoDataDirError } from './demo-site.ts';

export interface DemoOptions {
  readonly dataDir: string;
  readonly logger: Logger;
  /** Dashboard port; 0 = a free port. */
  readonly dashboardPort: number;
  /**
   * Dashboard bind address, default 127.0.0.1 (never `host`: the broker's address is for kiosks on
   * the LAN; the dashboard has no authentication and warns when bound beyond loopback).
   */
  readonly dashboardHost?: string;
  /** Embedded broker port; 0 = a free port (never fails because 1883 is taken). */
  readonly mqttPort: number;
  readonly host: string;
  /** Customer actions per second; 0 = no customers. */
  readonly actionsPerS: number;
  readonly onCustomerEvent?: (e: CustomerEvent) => void;
  /** Something the person starting the demo should know (printed by `npm start`). */
  readonly onNotice?: (message: string) => void;
  /**
   * 'runtime' (default): each terminal is the real terminal runtime with the PN532 emulator and
   * the virtual IO board. 'direct': protocol-level terminals without emulated hardware (lighter).
   */
  readonly terminalMode?: 'runtime' | 'direct';
  /** false: the hub, broker and dashboard only (production: real kiosks connect). Default true. */
  readonly site?: boolean;
  readonly currency?: string;
  /** Worker threads for signature checks; 0 = inline. Default 1. */
  readonly verifierThreads?: number;
  /** When unsent payouts are sent again (createHub's `payoutRetry`). */
  readonly payoutRetry?: PayoutRetryOptions;
  /** Embedded broker over TLS (PEM). */
  readonly mqttTls?: { readonly key: Buffer; readonly cert: Buffer };
  /** Use an external broker (Mosquitto) instead of the embedded one. */
  readonly externalMqtt?: { readonly url: string; readonly username: string; readonly password: string; readonly tls?: { readonly ca?: Buffer } };
}

export interface Demo {
  readonly hub: Hub;
  readonly dashboardUrl: string;
  /** The address the dashboard bound (`0.0.0.0` / `::`: every interface). */
  readonly dashboardHost: string;
  readonly mqttUrl: string;
  /** The admin socket operator CLI commands reach this hub by (undefined: the path is too long to bind). */
  readonly adminSocket: string | undefined;
  readonly dataDir: string;
  readonly created: boolean;
  readonly terminals: readonly SiteTerminal[];
  readonly source: HubSource;
  customerCounts(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

export async function startDemo(o: DemoOptions): Promise<Demo> {
  const dataDir = resolve(o.dataDir);
  // Before the hub writes anything: the demo site never runs on a real hub's folder.
  if (o.site !== false) claimDemoDataDir(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const closers: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) {
      try {
        await c();
      } catch (err) {
        o.logger.error({ err }, 'demo: error while stopping');
      }
    }
    closers.length = 0;
  };
  try {
    const threads = o.verifierThreads ?? 1;
    const hub = await createHub({
      dataDir,
      logger: o.logger.child({ part: 'hub' }),
      ...(o.currency !== undefined ? { currency: o.currency } : {}),
      ...(o.payoutRetry !== undefined ? { payoutRetry: o.payoutRetry } : {}),
      ...(threads > 0 ? { verifier: new WorkerVerifier({ workers: threads }) } : {}),
    });
    closers.push(() => hub.close());
    // Operator commands reach this hub while it runs (the CLI finds it by the data folder).
    const admin = await startAdminServer({ dataDir, run: adminRunnerFor(hub), logger: o.logger.child({ part: 'admin' }) });
    if (admin) closers.push(() => admin.close());
    const site = o.site === false ? { terminals: [], wallets: [], created: false } : await openDemoSite(hub, dataDir);

    const meter = new LiveMeter({ windowMs: 10_000 });
    const handler = instrumentHandler(
      {
        handleRequest: (terminalId, payload) => hub.handleRequest(terminalId, payload),
        // The hub records receipts (refunds a failed dispense) and acknowledges each, signed.
        answerReceipt: (terminalId, payload) => hub.answerReceipt(terminalId, payload),
        announcements: () => hub.announcements(),
        onAnnouncement: (cb) => hub.onAnnouncement(cb),
      },
      meter,
    );
    const server: HubServer = await createHubServer({
      service: handler,
      directory: hub,
      logger: o.logger,
      host: o.host,
      port: o.mqttPort,
      ...(o.mqttTls ? { tls: o.mqttTls } : {}),
      ...(o.externalMqtt ? { external: o.externalMqtt } : {}),
    });
    closers.push(() => server.close());

    const source = createHubSource({ hub, server: () => server, meter, name: `tapsettle hub ${hub.hubPublicKey.slice(0, 8)}`, onError: (err) => o.logger.warn({ err }, 'dashboard: verify failed') });
    closers.push(() => source.close());
    const dashboard: Dashboard = await startDashboard({
      source,
      host: o.dashboardHost ?? '127.0.0.1',
      port: o.dashboardPort,
      logger: o.logger,
      onError: (err) => o.logger.warn({ err }, 'dashboard error'),
    });
    closers.push(() => dashboard.close());

    const fares = () => hub.registry.fareVersions().at(-1)?.table;
    // The PN532 emulator needs socat for its pseudo-terminal pair; without it, protocol-only terminals.
    let terminalMode = o.terminalMode ?? 'runtime';
    if (terminalMode === 'runtime' && site.terminals.length > 0 && !isSocatAvailable()) {
      o.onNotice?.('socat not found: the demo terminals run without emulated hardware (install socat for the full terminal runtime)');
      terminalMode = 'direct';
    }
    const terminals: SiteTerminal[] = [];
    for (const t of site.terminals) {
      const gateMode = DEMO_TERMINALS.find((d) => d.terminalId === t.terminalId && 'gateMode' in d);
      const common = {
        terminalId: t.terminalId,
        kind: t.kind,
        merchantId: t.merchantId,
        ...(t.station !== undefined ? { station: t.station } : {}),
        secretKey: fromHex(t.secretKeyHex),
        certificate: t.certificate,
        hubKey: hub.trustAnchorKey,
      };
      const terminal =
        terminalMode === 'runtime'
          ? await startRuntimeTerminal({
              ...common,
              hubUrl: server.url,
              issuerKey: hub.issuerPublicKey,
              ...(gateMode && 'gateMode' in gateMode ? { gateMode: gateMode.gateMode } : {}),
              dataDir: join(dataDir, 'site', t.terminalId),
              // startTerminal and the runtime bind terminalId themselves (once per line).
              log: o.logger.child({ part: 'terminal' }),
            })
          : await startDirectTerminal({ ...common, url: server.url, currency: hub.currency, fares, trustedHubKeys: () => hubKeysTrustedAt(hub.hubKeys(), Date.now(), DEFAULT_MAX_SKEW_MS) });
      terminals.push(terminal);
      closers.push(() => terminal.close());
    }

    let customers: CustomerSim | undefined;
    if (o.actionsPerS > 0 && terminals.length > 0) {
      customers = startCustomers({
        terminals,
        wallets: site.wallets,
        actionsPerS: o.actionsPerS,
        operatorId: DEMO_OPERATOR.id,
        refreshBalance: async (w) => {
          w.balanceMinor = (await hub.engine.getAccount(w.publicKey))?.balanceMinor ?? null;
        },
        ...(o.onCustomerEvent ? { onEvent: o.onCustomerEvent } : {}),
      });
      closers.push(() => customers!.stop());
    }

    return {
      hub,
      dashboardUrl: dashboard.url,
      dashboardHost: dashboard.host,
      mqttUrl: server.url,
      adminSocket: admin?.path,
      dataDir,
      created: site.created,
      terminals,
      source,
      customerCounts: () => customers?.counts() ?? {},
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
