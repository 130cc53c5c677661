// A small, strict flag parser: every flag is declared, every value is checked, and anything
// else is a UsageError, which the CLI reports in one line with exit status 2.

export class UsageError extends Error {
  override name = "UsageError";
}

export type FlagType = "int" | "string" | "bool";

export interface FlagSpec {
  readonly type: FlagType;
  readonly min?: number;
  readonly max?: number;
}

export type FlagValues = Record<string, string | number | boolean | undefined>;

/** Parses `--name value`, `--name=value` and bare boolean `--name`; no positional arguments. */
export function parseFlags(args: readonly string[], specs: Readonly<Record<string, FlagSpec>>): FlagValues {
  const values: FlagValues = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith("--") || arg === "--") throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs[name];
    if (spec === undefined) throw new UsageError(`unknown flag --${name}`);
    if (name in values) throw new UsageError(`--${name} given twice`);
    let text: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (spec.type === "bool") {
      if (text !== undefined && text !== "true" && text !== "false") throw new UsageError(`--${name} takes no value (or =true/=false)`);
      values[name] = text !== "false";
      continue;
    }
    if (text === undefined) {
      text = args[++i];
      if (text === undefined || text.startsWith("--")) throw new UsageError(`--${name} needs a value`);
    }
    if (spec.type === "string") {
      if (text.length === 0) throw new UsageError(`--${name} is empty`);
      values[name] = text;
      continue;
    }
    if (!/^-?[0-9]+$/.test(text)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(text)}`);
    const number = Number(text);
    if (!Number.isSafeInteger(number)) throw new UsageError(`--${name} is out of range`);
    if (spec.min !== undefined && number < spec.min) throw new UsageError(`--${name} must be at least ${spec.min}`);
    if (spec.max !== undefined && number > spec.max) throw new UsageError(`--${name} must be at most ${spec.max}`);
    values[name] = number;
  }
  return values;
}
