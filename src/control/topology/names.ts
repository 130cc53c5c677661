// The one syntax shared by node ids, rows, racks, power domains, colors and client ids.

import { controlLimits } from "../limits.ts";

const namePattern = /^[A-Za-z0-9._-]+$/;

/** Why `name` is not a valid name, or null when it is. ASCII only, so bytes equal characters. */
export function nameProblem(name: string): string | null {
  if (name.length === 0) return "is empty";
  if (name.length > controlLimits.nameBytesMax) return `is longer than ${controlLimits.nameBytesMax} bytes`;
  if (!namePattern.test(name)) return "may contain only A-Z, a-z, 0-9, '.', '_' and '-'";
  return null;
}
