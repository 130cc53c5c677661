// History recording and the linearizability checker.
//
//   const recorder = new HistoryRecorder();
//   const id = recorder.invoke(cell, client, tx, now);   // when the client sends
//   recorder.complete(id, result, later);                // when it gets an answer, or
//   recorder.timeout(id, later);                         // when it gives up
//   for (const verdict of checkHistory(recorder)) {
//     if (verdict.ok !== true) console.log(verdict.explanation);
//   }
//
// Eventually consistent reads are checked per session with `checkSession`.
export * from "./explain.ts";
export * from "./linearizable.ts";
export * from "./operation.ts";
export * from "./recorder.ts";
export * from "./results.ts";
export * from "./session.ts";
export * from "./verdict.ts";
