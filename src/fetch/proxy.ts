// Which requests go through an HTTP proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, either case), decided
// here for both clients: fetch and our HTTP/1.1 client, which speaks only directly.
//
// Bun's fetch reads those variables by itself on every request, with rules of its own: it proxies
// loopback, and its NO_PROXY wins even over an explicit `proxy` option. Two deciders would send a
// store's small reads one way and its large ones the other. So takeProxyEnv() moves the variables
// out of process.env once, at start; every fetch() then gets `proxy` from proxyOf(), and
// proxyEnvVars() hands the variables on to the programs we start (the NBD daemon, the shell).

import type { BlockList } from "node:net";
import { redactUrls } from "./errors.ts";
import { authorize } from "./netrc.ts";

// node:net costs ~10 ms to load (more under TCG, on every boot): only NO_PROXY address ranges need it
const net = (): typeof import("node:net") => require("node:net");

/** The proxy a URL goes through, and the variable that named it (for messages). */
export interface Via {
  url: string;
  variable: string;
}

export interface ProxySettings {
  http: Via | null;
  https: Via | null;
  /** NO_PROXY entries, lower case, without ports: host, .domain or domain, or "*" */
  noProxy: string[];
  /** NO_PROXY's address ranges (10.0.0.0/8, fd00::/8), as curl and Go read them; null: none */
  noProxyNets: BlockList | null;
  /** the variables as they were set, to hand on to child processes */
  vars: Record<string, string>;
}

const NAMES = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] as const;

/** Parses the proxy variables of an environment (the upper-case name wins, as in curl). */
export function readProxyEnv(env: Record<string, string | undefined>): ProxySettings {
  const vars: Record<string, string> = {};
  for (const n of NAMES) if (env[n]) vars[n] = env[n]!;
  // "proxy.corp:3128" without a scheme is http://, as curl reads it
  const via = (value: string, variable: string): Via => ({ url: value.includes("://") ? value : `http://${value}`, variable });
  const pick = (upper: string, lower: string): Via | null => (vars[upper] ? via(vars[upper]!, upper) : vars[lower] ? via(vars[lower]!, lower) : null);
  const noProxy: string[] = [];
  let noProxyNets: BlockList | null = null;
  for (const raw of (vars.NO_PROXY ?? vars.no_proxy ?? "").split(",")) {
    const e = raw.trim().toLowerCase();
    const cidr = /^\[?([0-9a-f:.]+)\]?\/(\d{1,3})$/.exec(e);
    const family = cidr ? net().isIP(cidr[1]!) : 0;
    if (cidr && family && Number(cidr[2]) <= (family === 4 ? 32 : 128)) {
      noProxyNets ??= new (net().BlockList)();
      noProxyNets.addSubnet(cidr[1]!, Number(cidr[2]), family === 4 ? "ipv4" : "ipv6");
    } else if (e) noProxy.push(e.replace(/^\[(.*)\](:\d+)?$/, "$1").replace(/^([^:]*):\d+$/, "$1"));
  }
  return { http: pick("HTTP_PROXY", "http_proxy"), https: pick("HTTPS_PROXY", "https_proxy"), noProxy, noProxyNets, vars };
}

let current: ProxySettings = readProxyEnv({});

/** Reads the proxy variables once and removes them from `env`, so that only proxyOf() decides. */
export function takeProxyEnv(env: Record<string, string | undefined> = process.env): ProxySettings {
  current = readProxyEnv(env);
  for (const n of NAMES) delete env[n];
  return current;
}

/** The settings taken at start. */
export const proxySettings = (): ProxySettings => current;

/** The proxy variables taken at start, for the environment of a program we start. */
export const proxyEnvVars = (): Record<string, string> => ({ ...current.vars });

/** The proxy for this URL, or null to connect directly. Loopback is never proxied (as in Go's
 *  net/http: a local server behind a remote proxy is never what is meant); nor what NO_PROXY lists. */
export function proxyOf(url: string, s: ProxySettings = current): Via | null {
  const via = url.startsWith("https:") ? s.https : url.startsWith("http:") ? s.http : null;
  if (!via) return null;
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, "").toLowerCase();
  } catch {
    return null;
  }
  if (host === "localhost" || host === "::1" || /^127\./.test(host)) return null;
  for (const e of s.noProxy) if (e === "*" || host === e.replace(/^\./, "") || host.endsWith(e.startsWith(".") ? e : `.${e}`)) return null;
  const family = s.noProxyNets ? net().isIP(host) : 0;
  if (family && s.noProxyNets!.check(host, family === 4 ? "ipv4" : "ipv6")) return null;
  return via;
}

/** The `proxy` option for fetch(): the proxy's URL, with the netrc's user and password for the
 *  proxy's host when the variable carries none (so a boot's proxy password can stay off the kernel
 *  command line too); undefined to connect directly. */
export function proxyOption(url: string): string | undefined {
  const via = proxyOf(url);
  return via ? authorize(via.url) : undefined;
}

/** "HOST:PORT (HTTPS_PROXY)": the proxy and the variable that named it, never its password. */
export function viaHost(via: Via): string {
  let where = redactUrls(via.url);
  try {
    where = new URL(via.url).host;
  } catch {}
  return `${where} (${via.variable})`;
}

/** "proxy HOST:PORT (HTTPS_PROXY)": who a message should blame when a proxied request failed. */
export const describeVia = (via: Via): string => `proxy ${viaHost(via)}`;

/** Whom a TLS failure of a request to `url` concerns: the server; or, through an https:// proxy
 *  (TLS to the proxy itself), the proxy for an http:// URL and either of them for an https:// one
 *  (Bun's error does not say which of the two handshakes failed). */
export function tlsPeer(url: string, via: Via | null): string {
  let host = url;
  try {
    host = new URL(url).hostname;
  } catch {}
  if (!via?.url.startsWith("https:")) return host;
  return url.startsWith("https:") ? `${host} or the ${describeVia(via)}` : `the ${describeVia(via)}`;
}
