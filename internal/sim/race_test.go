//go:build race

package sim

// raceOn: the race detector multiplies the CPU and memory of hundreds of
// goroutines per node, so the smoke sizes shrink under it (make test).
const raceOn = true
