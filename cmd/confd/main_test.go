package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// gcPercent returns the collector's current GOGC.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestOneShotGC(t *testing.T) {
	before := gcPercent()
	for _, tc := range []struct {
		name string
		env  string // "" for unset
		want int
	}{
		{name: "GOGC unset", want: oneShotGCPercent},
		{name: "GOGC set by the user", env: "50", want: before},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.env) // restored when the test ends
			if tc.env == "" {
				os.Unsetenv("GOGC")
			}
			restore := oneShotGC()
			if got := gcPercent(); got != tc.want {
				t.Errorf("GOGC during the run = %d, want %d", got, tc.want)
			}
			restore()
			if got := gcPercent(); got != before {
				t.Errorf("GOGC after the run = %d, want %d as before", got, before)
			}
		})
	}
}
