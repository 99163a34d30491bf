// The event log: human lines through consola, and with inetboot.log=json one machine-readable line
// `@inetboot {json}` per step on the console (names documented in docs/events.md; tests read them).
import { redactUrls } from "../fetch/errors.ts";
import { bootLog as consola, writeFd } from "../sys/console.ts";

const started = performance.now();
let jsonLines = false;
const sinks: ((line: string) => void)[] = [];

export function enableJsonEvents(on = true) {
  jsonLines = on;
}
/** Extra sinks (e.g. the boot timeline file); each gets the JSON line. */
export function addEventSink(fn: (line: string) => void) {
  sinks.push(fn);
}

export function uptime(): number {
  return Math.round(performance.now() - started) / 1000;
}

export type EventFields = Record<string, unknown>;

export function emit(ev: string, fields: EventFields = {}, human?: string) {
  const rec = { t: uptime(), ev, ...fields };
  // A store URL may carry user:password@ (HTTP Basic): never on the console or in a log.
  const line = redactUrls(JSON.stringify(rec));
  if (jsonLines) writeFd(1, `@inetboot ${line}\n`);
  for (const s of sinks) s(line);
  if (human !== undefined) {
    if (ev === "error") consola.error(redactUrls(human));
    else consola.info(redactUrls(human));
  }
}
