// A size given on the command line (`--max-size 512M`, `--size 1G`, `--cache-size 2G`): bytes, or
// one line naming the option and what it takes.
import { parseSize } from "../store/format.ts";
import { UserError } from "../sys/errors.ts";

export function sizeOption(flag: string, text: string): number {
  try {
    return parseSize(text);
  } catch {
    throw new UserError(`bad ${flag} "${text}" (use e.g. 512M or 2G)`);
  }
}
