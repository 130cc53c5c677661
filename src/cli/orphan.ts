// A child that must not outlive the process that started it: `physalia dev` starts its
// nodes with --exit-with-parent, so that a dev killed with SIGKILL (which it cannot catch)
// leaves no nodes behind. The parent's death shows as a change of this process's parent
// (it is re-parented to init or a subreaper); both runtimes read the parent pid afresh.

/** Calls `onOrphaned` once, within `intervalMs`, after the parent process ends. */
export function watchParent(onOrphaned: () => void, intervalMs = 500): { stop(): void } {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onOrphaned();
  }, intervalMs);
  return { stop: () => clearInterval(timer) };
}
