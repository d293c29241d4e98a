// Package cputime measures process CPU time for the benchmarks, which
// compare costs within one run on shared, noisy machines.
package cputime
