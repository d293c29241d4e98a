package gctune

import (
	"io/fs"
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestApply(t *testing.T) {
	v2 := fstest.MapFS{"memory.max": {Data: []byte("1073741824\n")}}
	tests := []struct {
		name        string
		env         map[string]string
		cgroup      fstest.MapFS
		wantPercent int // -1: the previous setting
		wantLimit   int64
	}{
		{"defaults, no cgroup", nil, nil, Percent, 0},
		{"cgroup v2 limit", nil, v2, Percent, 966367641},
		{"cgroup v2 without limit", nil, fstest.MapFS{"memory.max": {Data: []byte("max\n")}}, Percent, 0},
		{"cgroup v1 limit", nil, fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("536870912\n")}}, Percent, 483183820},
		{"cgroup v1 without limit", nil, fstest.MapFS{"memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")}}, Percent, 0},
		{"garbage in memory.max", nil, fstest.MapFS{"memory.max": {Data: []byte("lots")}}, Percent, 0},
		{"GOGC set", map[string]string{"GOGC": "150"}, nil, -1, 0},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "100MiB"}, v2, Percent, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := debug.SetGCPercent(-1)
			debug.SetGCPercent(before)
			beforeLimit := debug.SetMemoryLimit(-1)
			var cgroup fs.FS // none, as outside a container
			if tt.cgroup != nil {
				cgroup = tt.cgroup
			}
			s, restore := Apply(func(k string) string { return tt.env[k] }, cgroup)
			want := tt.wantPercent
			if want == -1 {
				want = before
			}
			if got := debug.SetGCPercent(-1); got != want || s.GCPercent != want || s.Default != (tt.wantPercent == Percent) {
				t.Errorf("GOGC %d, reported %+v, want %d", got, s, want)
			}
			debug.SetGCPercent(want)
			gotLimit := debug.SetMemoryLimit(-1)
			if s.MemoryLimit != tt.wantLimit || (tt.wantLimit != 0 && gotLimit != tt.wantLimit) || (tt.wantLimit == 0 && gotLimit != beforeLimit) {
				t.Errorf("memory limit %d, reported %d, want %d", gotLimit, s.MemoryLimit, tt.wantLimit)
			}
			restore()
			if got := debug.SetGCPercent(-1); got != before {
				t.Errorf("restore: GOGC %d, want %d", got, before)
			}
			debug.SetGCPercent(before)
			if got := debug.SetMemoryLimit(-1); got != beforeLimit {
				t.Errorf("restore: memory limit %d, want %d", got, beforeLimit)
			}
		})
	}
}
