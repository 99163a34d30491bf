// Strict JSON (RFC 8259) for signed documents. JSON.parse is not enough here: its errors carry no
// position, and it silently keeps the last of duplicate keys, a classic parser-differential trick
// against signed JSON (two readers seeing different values). This parser reports "line L column C"
// and rejects duplicate keys. Scalars are cut out by this scanner and decoded by JSON.parse.

export class JsonSyntaxError extends Error {
  constructor(
    readonly what: string,
    readonly offset: number,
    readonly line: number,
    readonly column: number,
  ) {
    super(`JSON syntax error at line ${line} column ${column}: ${what}`);
    this.name = "JsonSyntaxError";
  }
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

const MAX_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Parse `text` as one JSON value; throws JsonSyntaxError with a 1-based line and column. */
export function parseJsonStrict(text: string): JsonValue {
  let i = 0;

  const fail = (what: string, at = i): never => {
    let line = 1;
    let col = 1;
    for (let k = 0; k < at && k < text.length; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        col = 1;
      } else col++;
    }
    throw new JsonSyntaxError(what, at, line, col);
  };
  const describe = (at: number) => (at >= text.length ? "unexpected end of input" : `unexpected ${JSON.stringify(text[at])}`);

  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };

  const str = (): string => {
    const start = i++; // opening quote
    for (;;) {
      if (i >= text.length) fail("unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in string (escape it)");
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("bad \\u escape");
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail("bad escape in string");
      } else i++;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };

  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: { [k: string]: JsonValue } = Object.create(null);
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(text[i] === "}" ? "trailing comma in object" : `${describe(i)}, expected a property name in double quotes`);
        const keyAt = i;
        const key = str();
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
        ws();
        if (text[i] !== ":") fail(`${describe(i)}, expected ':'`);
        i++;
        obj[key] = value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return obj;
        } else fail(`${describe(i)}, expected ',' or '}'`);
      }
    }
    if (c === "[") {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        ws();
        if (text[i] === "]") fail("trailing comma in array");
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return arr;
        } else fail(`${describe(i)}, expected ',' or ']'`);
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m && m[0] !== "-") {
      i += m[0].length;
      return Number(m[0]);
    }
    return fail(describe(i));
  };

  const v = value(0);
  ws();
  if (i < text.length) fail(`${describe(i)} after the JSON value`);
  return v;
}
