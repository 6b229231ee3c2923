//go:build race

package ingest

// raceEnabled: the race detector makes more values escape to the heap,
// so allocation bounds are doubled under it.
const raceEnabled = true
