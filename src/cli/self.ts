// How to start another process of this same program, from sources or from the binary.

export function selfCommand(): string[] {
  const main = Bun.main;
  return main.endsWith(".ts") || main.endsWith(".js") ? [process.execPath, main] : [process.execPath];
}
