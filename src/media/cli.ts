// What `inetboot iso` and `inetboot usb` do, minus citty: turn option text into a menu, build,
// print the output path on stdout and progress on stderr.
import { humanBytes } from "../store/info.ts";
import { sizeOption } from "../cli/size.ts";
import { UserError } from "../sys/errors.ts";
import { parseEntry, type GrubMenu } from "./grub-config.ts";

export interface MenuArgs {
  entries: string[];
  default?: string;
  timeout?: string;
  serial?: boolean;
  append?: string;
}

function intOpt(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined || text === "") return undefined;
  if (!/^-?\d+$/.test(text) || Number(text) < min) throw new UserError(`bad --${name} "${text}" (a whole number ≥ ${min})`);
  return Number(text);
}

/** Option text → menu; the builders check the numbers against the menu itself. */
export function menuFromArgs(a: MenuArgs): GrubMenu {
  return {
    entries: a.entries.map(parseEntry),
    default: intOpt("default", a.default, 0),
    timeout: intOpt("timeout", a.timeout, -1),
    serial: !!a.serial,
    append: a.append,
  };
}

const say = (cmd: string) => (m: string) => process.stderr.write(`inetboot ${cmd}: ${m}\n`);

export async function runIso(a: MenuArgs & { out: string; kernel?: string; initrd?: string }) {
  const { buildIso } = await import("./iso.ts");
  const r = await buildIso({ ...menuFromArgs(a), out: a.out, kernel: a.kernel, initrd: a.initrd, log: say("iso") });
  say("iso")(`${humanBytes(r.bytes)} hybrid ISO (BIOS + UEFI; dd it to a stick or boot it as a CD)`);
  process.stdout.write(`${r.path}\n`);
}

export async function runUsb(
  a: MenuArgs & { out?: string; device?: string; size?: string; kernel?: string; initrd?: string; yesReallyOverwrite?: boolean },
) {
  let size: number | undefined;
  if (a.size !== undefined) {
    if (a.device) throw new UserError("--size is for --out images; a device is used whole");
    size = sizeOption("--size", a.size);
  }
  const { buildUsb } = await import("./usb.ts");
  const r = await buildUsb({
    ...menuFromArgs(a),
    out: a.out,
    device: a.device,
    yesReallyOverwrite: a.yesReallyOverwrite,
    size,
    kernel: a.kernel,
    initrd: a.initrd,
    log: say("usb"),
  });
  say("usb")(`${humanBytes(r.bytes)} GPT disk: FAT32 INETBOOT (${r.fatUuid}) at byte ${r.espOffset}, BIOS + UEFI`);
  if (a.out) say("usb")(`write it to a stick: dd if=${a.out} of=/dev/sdX bs=4M conv=fsync status=progress`);
  process.stdout.write(`${r.path}\n`);
}
