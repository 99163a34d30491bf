// Which URLs go through a proxy (pure logic; test/e2e/proxy.test.ts sends real requests through
// tinyproxy), and that the variables leave process.env once taken, so Bun's fetch cannot decide
// differently on its own.
import { afterEach, expect, test } from "bun:test";
import { describeVia, proxyEnvVars, proxyOf, readProxyEnv, takeProxyEnv, tlsPeer } from "../../src/fetch/proxy.ts";

const via = (url: string, env: Record<string, string>) => proxyOf(url, readProxyEnv(env));

test("the variable for the URL's scheme names the proxy, the upper-case one first", () => {
  expect(via("https://h/x", {})).toBeNull();
  expect(via("https://h/x", { HTTPS_PROXY: "http://proxy:3128" })).toEqual({ url: "http://proxy:3128", variable: "HTTPS_PROXY" });
  expect(via("https://h/x", { https_proxy: "http://p2:3128" })).toEqual({ url: "http://p2:3128", variable: "https_proxy" });
  expect(via("https://h/x", { HTTPS_PROXY: "http://p1:1", https_proxy: "http://p2:2" })?.variable).toBe("HTTPS_PROXY");
  expect(via("https://h/x", { HTTP_PROXY: "http://proxy:3128" })).toBeNull(); // http's only
  expect(via("http://h/x", { http_proxy: "http://proxy:3128" })?.url).toBe("http://proxy:3128");
  expect(via("http://h/x", { HTTP_PROXY: "" })).toBeNull();
  expect(via("ftp://h/x", { HTTP_PROXY: "http://proxy:3128" })).toBeNull();
  expect(via("http://h/x", { HTTP_PROXY: "proxy.corp:3128" })?.url).toBe("http://proxy.corp:3128"); // no scheme: http://
  expect(via("not a url", { HTTP_PROXY: "http://proxy:3128" })).toBeNull();
});

test("loopback never goes through a proxy, nor what NO_PROXY lists", () => {
  const P = { HTTPS_PROXY: "http://proxy:3128", NO_PROXY: "internal.example, .corp.example,10.0.0.5:8080" };
  for (const direct of ["https://127.0.0.1:8443/x", "https://127.1.2.3/x", "https://localhost/x", "https://[::1]/x", "https://internal.example/x", "https://a.internal.example/x", "https://b.corp.example/x", "https://10.0.0.5/x", "https://INTERNAL.example/x"])
    expect([direct, via(direct, P)]).toEqual([direct, null]);
  for (const proxied of ["https://notinternal.example/x", "https://cdn.example/x", "https://corp.example.net/x", "https://10.0.0.50/x"])
    expect([proxied, via(proxied, P)?.url]).toEqual([proxied, "http://proxy:3128"]);
  expect(via("https://cdn.example/x", { ...P, NO_PROXY: "*" })).toBeNull();
  expect(via("https://cdn.example/x", { HTTPS_PROXY: "http://proxy:3128", no_proxy: "cdn.example" })).toBeNull();
});

test("NO_PROXY address ranges and entries with ports, IPv4 and IPv6", () => {
  const P = { HTTP_PROXY: "http://proxy:3128", NO_PROXY: "10.0.0.0/8, fd00::/8, [2001:db8::1]:443, 192.168.1.7:80, bad/99" };
  for (const direct of ["http://10.1.2.3/x", "http://10.255.0.1:8080/x", "http://[fd12::1]/x", "http://[2001:db8::1]/x", "http://192.168.1.7/x"])
    expect([direct, via(direct, P)]).toEqual([direct, null]);
  for (const proxied of ["http://11.0.0.1/x", "http://[fe80::1]/x", "http://[2001:db8::2]/x", "http://192.168.1.8/x", "http://10.example/x"])
    expect([proxied, via(proxied, P)?.url]).toEqual([proxied, "http://proxy:3128"]);
});

test("a message names the proxy's host and the variable, never its password", () => {
  expect(describeVia({ url: "http://user:secret@proxy.corp:3128", variable: "HTTPS_PROXY" })).toBe("proxy proxy.corp:3128 (HTTPS_PROXY)");
});

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
  takeProxyEnv({}); // back to "no proxy"
});

test("a TLS failure blames the server, or an https:// proxy: alone for an http:// URL, as one of two for an https:// one", () => {
  const plain = { url: "http://proxy.corp:3128", variable: "HTTPS_PROXY" };
  const tls = { url: "https://u:pw@proxy.corp:3129", variable: "HTTP_PROXY" };
  expect(tlsPeer("https://store.example/x", null)).toBe("store.example");
  expect(tlsPeer("https://store.example/x", plain)).toBe("store.example");
  expect(tlsPeer("http://store.example/x", tls)).toBe("the proxy proxy.corp:3129 (HTTP_PROXY)");
  expect(tlsPeer("https://store.example/x", tls)).toBe("store.example or the proxy proxy.corp:3129 (HTTP_PROXY)");
});

test("takeProxyEnv removes the variables from the environment and keeps them for child processes", async () => {
  const env: Record<string, string | undefined> = { HTTP_PROXY: "http://p:1", no_proxy: "x.example", PATH: "/bin" };
  takeProxyEnv(env);
  expect(env).toEqual({ PATH: "/bin" });
  expect(proxyEnvVars()).toEqual({ HTTP_PROXY: "http://p:1", no_proxy: "x.example" });
  expect(proxyOf("http://y.example/")?.url).toBe("http://p:1");
  expect(proxyOf("http://x.example/")).toBeNull();

  // Why: with the variable still set, Bun's fetch would send a loopback request to a dead proxy.
  const srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("direct") });
  try {
    process.env.HTTP_PROXY = "http://127.0.0.1:1";
    takeProxyEnv();
    expect(process.env.HTTP_PROXY).toBeUndefined();
    expect(await (await fetch(`http://127.0.0.1:${srv.port}/`, { proxy: proxyOf(`http://127.0.0.1:${srv.port}/`)?.url })).text()).toBe("direct");
  } finally {
    srv.stop(true);
  }
});
