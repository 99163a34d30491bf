// redactUrls (src/fetch/errors.ts): a URL's user:password@ never reaches a message, an event or the
// echoed kernel command line, whatever the URL's scheme.
import { expect, test } from "bun:test";
import { redactUrls } from "../../src/fetch/errors.ts";
import { addEventSink, emit } from "../../src/agent/events.ts";

test("user:password@ goes from URLs of any scheme; the rest of the text stays", () => {
  expect(redactUrls("inetboot.mirror=ftp://u:topsecret@x/ inetboot.root=http://u:p@h/s/")).toBe("inetboot.mirror=ftp://x/ inetboot.root=http://h/s/");
  expect(redactUrls("nbd+unix://me:pw@host/exp and SFTP://a@b:22/x")).toBe("nbd+unix://host/exp and SFTP://b:22/x");
  // a raw @ in the password: up to the last @ before the host ends
  expect(redactUrls("http://u:p@ss@h:80/x")).toBe("http://h:80/x");
  // an @ after the host (path, query) is no userinfo
  expect(redactUrls("https://h/y?u=a@b and ftp://h/me@x")).toBe("https://h/y?u=a@b and ftp://h/me@x");
  // inside compact JSON: the URL ends at its quote, the JSON stays JSON
  const json = JSON.stringify({ a: "ftp://u:p@h/", b: "mail me@example.org" });
  expect(JSON.parse(redactUrls(json))).toEqual({ a: "ftp://h/", b: "mail me@example.org" });
  expect(redactUrls("no url: user@host, a:b@c")).toBe("no url: user@host, a:b@c");
});

test("the agent's echo of the command line and its warnings carry no password of a non-http URL", () => {
  const lines: string[] = [];
  addEventSink((l) => lines.push(l));
  emit("agent.start", { cmdline: "console=ttyS0 inetboot.mirror=ftp://u:topsecret@x/ quiet" });
  emit("warning", { message: "inetboot.mirror=ftp://u:topsecret@x/: not an http(s) URL" });
  expect(lines.join("\n")).not.toContain("topsecret");
  expect(JSON.parse(lines[0]!).cmdline).toBe("console=ttyS0 inetboot.mirror=ftp://x/ quiet");
});
