// Requests and results of placement, repair and move, in the names of the topology file.

import type { Constraint } from "./rules.ts";

export interface ClientLocation {
  readonly row: string;
  readonly rack?: string;
}

/** The three places a cell must be available from: the instance and both storage servers. */
export interface CellClients {
  readonly instance: ClientLocation;
  readonly primary: ClientLocation;
  readonly replica: ClientLocation;
}

export interface PlaceRequest {
  readonly clients: CellClients;
  readonly color: string;
  /** Replicas in the cell; 7 unless said otherwise. */
  readonly size?: number;
  /** Breaks ties between equally full nodes; by default a counter of this placer. */
  readonly salt?: number;
}

export interface CellPlacement {
  readonly nodes: readonly string[];
  readonly color: string;
  /** The row the cell was placed for (see targetRow). */
  readonly row: string;
  /** Rules the cell breaks because no choice of nodes could keep them, in relaxation order. */
  readonly relaxed: readonly Constraint[];
  /** One sentence per relaxed rule saying why. */
  readonly reasons: readonly string[];
}

export interface RepairRequest {
  readonly nodes: readonly string[];
  readonly color: string;
  readonly failed: string;
  readonly clients: CellClients;
  /** Other nodes known to be down, never chosen as the replacement. */
  readonly down?: readonly string[];
  readonly salt?: number;
}

export interface Repair extends CellPlacement {
  readonly removed: string;
  readonly added: string;
}

export interface MoveRequest {
  readonly nodes: readonly string[];
  readonly color: string;
  /** Where the clients are now. */
  readonly clients: CellClients;
  readonly salt?: number;
}

/** One membership change: the cell replaces one node at a time. */
export interface MoveStep {
  readonly remove: string;
  readonly add: string;
}

export interface MovePlan extends CellPlacement {
  readonly steps: readonly MoveStep[];
}

/** An expected failure of a placement request: unknown names, or too few usable nodes. */
export class PlacementError extends Error {
  override name = "PlacementError";
}
