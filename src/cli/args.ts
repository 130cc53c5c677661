// A small, strict flag parser: every flag is declared, every value is checked, and anything
// else is a UsageError, which the CLI reports in one line with exit status 2. A lone `--`
// ends the flags: every word after it is positional, so a value may be `--help`.

export class UsageError extends Error {
  override name = "UsageError";
}

/** At most this many characters of an argument are quoted back in a message. */
const quoteChars = 40;

/** An argument quoted back in a message, cut short so a huge one is never echoed whole. */
export function quote(text: string): string {
  return text.length <= quoteChars ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, quoteChars))}... (${text.length} characters)`;
}

/** The words before a lone `--`: only these can be flags (or --help). */
export function flagWords(args: readonly string[]): readonly string[] {
  const end = args.indexOf("--");
  return end < 0 ? args : args.slice(0, end);
}

export type FlagType = "int" | "string" | "bool";

export interface FlagSpec {
  readonly type: FlagType;
  readonly min?: number;
  readonly max?: number;
}

export type FlagValues = Record<string, string | number | boolean | undefined>;

/**
 * Parses `--name value`, `--name=value` and bare boolean `--name`, anywhere among the
 * arguments before a lone `--`; every other word is positional, in order.
 */
export function parseCommandLine(args: readonly string[], specs: Readonly<Record<string, FlagSpec>>): { flags: FlagValues; positional: string[] } {
  const values: FlagValues = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown flag ${quote(`--${name}`)}`);
    if (name in values) throw new UsageError(`flag --${name} is given twice`);
    let text: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (spec.type === "bool") {
      if (text !== undefined && text !== "true" && text !== "false") throw new UsageError(`flag --${name} takes no value (or =true/=false)`);
      values[name] = text !== "false";
      continue;
    }
    if (text === undefined) {
      text = args[++i];
      if (text === undefined || text.startsWith("--")) throw new UsageError(`flag --${name} needs a value`);
    }
    if (spec.type === "string") {
      values[name] = text;
      continue;
    }
    const number = /^-?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
    const min = spec.min ?? Number.MIN_SAFE_INTEGER;
    const max = spec.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(number) || number < min || number > max) {
      throw new UsageError(`flag --${name} must be an integer from ${min} to ${max}, not ${quote(text)}`);
    }
    values[name] = number;
  }
  return { flags: values, positional };
}

/** Like `parseCommandLine`, for commands that take no positional words. */
export function parseFlags(args: readonly string[], specs: Readonly<Record<string, FlagSpec>>): FlagValues {
  const { flags, positional } = parseCommandLine(args, specs);
  if (positional.length > 0) throw new UsageError(`unexpected argument ${quote(positional[0] as string)}`);
  return flags;
}
