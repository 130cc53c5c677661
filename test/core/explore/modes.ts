// The explorer runs in two modes: the CI slice (`npm test`: bounds chosen so that every
// search finishes in seconds) and the long runs (`EXPLORE=long`, `npm run test:explore`:
// larger budgets, all three replicas live, thousands of random walks). Figures are printed
// in long mode, or with EXPLORE_VERBOSE=1.

export const long = process.env.EXPLORE === "long";

/** A test's time limit: generous in CI (the machine may be busy), none to speak of in long mode. */
export const timeoutMs = long ? 24 * 3600_000 : 300_000;

export const now = (): number => performance.now();

export function note(line: string): void {
  if (long || process.env.EXPLORE_VERBOSE !== undefined) console.log(line);
}
