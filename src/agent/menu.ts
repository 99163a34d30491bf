// The console boot menu (the seed's CD offered six systems): numbered entries, a default, and a
// timeout after which the default boots. inetboot.entry=NAME skips it.
import type { Readable } from "node:stream";

export interface MenuItem {
  name: string;
  title: string;
}

/** Maps what the user typed (number, name, or empty for the default) to an item index, or -1. */
export function choose(items: MenuItem[], input: string, def: number): number {
  const s = input.trim();
  if (s === "") return def;
  if (/^\d+$/.test(s)) {
    const n = Number(s) - 1;
    return n >= 0 && n < items.length ? n : -1;
  }
  return items.findIndex((i) => i.name === s);
}

/** Shows the menu and resolves with the chosen index (the default on timeout or closed input). A
 *  key pressed stops the countdown (as in GRUB): someone is typing, the default must not boot under
 *  their fingers. A timeout of 0 boots the default at once. */
export async function menu(items: MenuItem[], def: number, timeoutS: number, out: (s: string) => void, input: Readable = process.stdin): Promise<number> {
  out("\n");
  items.forEach((it, i) => out(`  ${i + 1}) ${it.title}${i === def ? "  [default]" : ""}\n`));
  if (timeoutS <= 0) return def;
  return new Promise((resolve) => {
    let buf = "";
    let left = timeoutS;
    let counting = true;
    const finish = (n: number) => {
      clearInterval(tick);
      input.off("data", onData);
      input.pause();
      resolve(n);
    };
    const prompt = () => out(counting ? `\rBoot which entry [${def + 1}]? (${left}s) ` : `Boot which entry [${def + 1}]? `);
    const onData = (d: Buffer) => {
      if (counting) (counting = false), clearInterval(tick);
      buf += d.toString();
      // every complete line (typed ahead, or pasted as one chunk), in order
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        const pick = choose(items, line, def);
        if (pick >= 0) {
          out("\n");
          return finish(pick);
        }
        out(`\nno entry '${line.trim()}': type a number from 1 to ${items.length}\n`);
        prompt();
      }
    };
    const tick = setInterval(() => {
      left--;
      if (left <= 0) {
        out("\n");
        finish(def);
      } else prompt();
    }, 1000);
    input.on("data", onData);
    input.resume();
    prompt();
  });
}
