/** True when a strict majority of `members` is among `votes`. */
export function hasQuorum(members: readonly string[], votes: { has(node: string): boolean }): boolean {
  let count = 0;
  for (const member of members) if (votes.has(member)) count++;
  return 2 * count > members.length;
}
