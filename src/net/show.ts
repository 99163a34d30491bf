// Read-only views for the rescue shell's `ip addr` / `ip route` (there is no iproute2 in the initramfs).
import { formatAddresses } from "./iface.ts";
import { formatRoutes } from "./route.ts";

export function showAddresses(): string {
  const lines = formatAddresses();
  return lines.length ? lines.join("\n") + "\n" : "no interfaces\n";
}

export function showRoutes(): string {
  const lines = formatRoutes();
  return lines.length ? lines.join("\n") + "\n" : "no IPv4 routes\n";
}
