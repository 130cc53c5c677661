// How fast the linearizability checker is: `bun test/check/bench.ts`.
// Prints, per history shape, the median time over a few seeds and the states explored.

import { checkCell } from "../../src/check/linearizable.ts";
import { simulateHistory } from "./simulate.ts";

const shapes = [
  { clients: 5, opsPerClient: 200, keys: 6, timeoutRate: 0, durationTicksMax: 10 },
  { clients: 5, opsPerClient: 200, keys: 6, timeoutRate: 0.03, durationTicksMax: 10 },
  { clients: 5, opsPerClient: 200, keys: 6, timeoutRate: 0.1, durationTicksMax: 10 },
  { clients: 5, opsPerClient: 1000, keys: 6, timeoutRate: 0.03, durationTicksMax: 10 },
  { clients: 10, opsPerClient: 100, keys: 6, timeoutRate: 0.03, durationTicksMax: 10 },
  { clients: 5, opsPerClient: 200, keys: 2, timeoutRate: 0.03, durationTicksMax: 30 },
];

for (const shape of shapes) {
  const times: number[] = [];
  const states: number[] = [];
  const verdicts: string[] = [];
  for (let seed = 1; seed <= 7; seed++) {
    const { recorder, cell } = simulateHistory({ seed, ...shape });
    const history = recorder.history(cell);
    const started = performance.now();
    const verdict = checkCell(cell, history);
    times.push(performance.now() - started);
    states.push(verdict.statesExplored);
    verdicts.push(String(verdict.ok));
  }
  times.sort((a, b) => a - b);
  states.sort((a, b) => a - b);
  console.log(
    `${JSON.stringify(shape)}: median ${times[3]!.toFixed(1)} ms (max ${times[6]!.toFixed(1)}), ` +
      `states median ${states[3]} max ${states[6]}, verdicts ${[...new Set(verdicts)].join(",")}`,
  );
}
