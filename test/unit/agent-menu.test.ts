// The console boot menu with a fake console (a PassThrough stream): lines typed ahead or pasted,
// a key that stops the countdown, timeouts.
import { expect, test } from "bun:test";
import { PassThrough } from "node:stream";
import { menu } from "../../src/agent/menu.ts";

const items = [{ name: "a", title: "A" }, { name: "b", title: "B" }];

function console() {
  const input = new PassThrough();
  let text = "";
  return { input, out: (s: string) => void (text += s), text: () => text };
}

test("several lines in one chunk are each handled, in order; a wrong one names what was typed", async () => {
  const c = console();
  const chosen = menu(items, 0, 5, c.out, c.input);
  c.input.write("9\n2\n");
  expect(await chosen).toBe(1);
  expect(c.text()).toContain("no entry '9': type a number from 1 to 2");
});

test("a key pressed stops the countdown: the default does not boot while someone types", async () => {
  const c = console();
  let done = false;
  const chosen = menu(items, 0, 1, c.out, c.input).then((n) => ((done = true), n));
  c.input.write("b");
  await Bun.sleep(1500); // past the 1 s timeout
  expect(done).toBe(false);
  c.input.write("\r\n");
  expect(await chosen).toBe(1);
});

test("no input: the default after the timeout; a timeout of 0: at once", async () => {
  const c = console();
  const t0 = performance.now();
  expect(await menu(items, 1, 1, c.out, c.input)).toBe(1);
  expect(performance.now() - t0).toBeGreaterThan(900);
  const t1 = performance.now();
  expect(await menu(items, 1, 0, c.out, new PassThrough())).toBe(1);
  expect(performance.now() - t1).toBeLessThan(100);
});
