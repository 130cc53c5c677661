// Compiles the CLI into one self-contained executable: dist/physalia.
import { mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
const result = Bun.spawnSync(["bun", "build", "--compile", "--minify", "src/cli/main.ts", "--outfile", "dist/physalia"], {
  stdout: "inherit",
  stderr: "inherit",
});
if (result.exitCode !== 0) {
  console.error("build failed");
  process.exit(result.exitCode ?? 1);
}
console.log("built dist/physalia");
