/**
 * How many spare TAPs the node keeps (`--spare-taps`), here rather than beside SpareTaps so
 * that the configuration can bound its flag without importing a strategy.
 */

/** Enough for a few CREATEs at once; few enough to be noise among the node's links. */
export const DEFAULT_SPARE_TAPS = 4;
export const MAX_SPARE_TAPS = 64;
