// firmata-io ships no types; only the transport-agnostic constructor is used (j5-board.ts).
declare module 'firmata-io' {
  const bindTransport: { Firmata: new (transport: object, options?: object) => unknown };
  export default bindTransport;
}
