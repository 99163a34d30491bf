// The event log (src/agent/events.ts): what reaches the console and the timeline file.
import { expect, test } from "bun:test";
import { addEventSink, emit } from "../../src/agent/events.ts";

test("a URL's user:password@ never reaches an event line (the command line and store URLs may carry one)", () => {
  const lines: string[] = [];
  addEventSink((l) => lines.push(l));
  emit("agent.start", { cmdline: "console=ttyS0 inetboot.root=http://boot:s3cret@10.0.2.2:8080/store/ quiet" });
  emit("error", { message: "NBD server for https://u:p@h/x: HTTP 500" });
  expect(lines).toHaveLength(2);
  expect(JSON.parse(lines[0]!)).toMatchObject({ ev: "agent.start", cmdline: "console=ttyS0 inetboot.root=http://10.0.2.2:8080/store/ quiet" });
  expect(JSON.parse(lines[1]!).message).toBe("NBD server for https://h/x: HTTP 500");
});
