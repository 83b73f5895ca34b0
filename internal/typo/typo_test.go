package typo

import (
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	long := strings.Repeat("a", MaxLen+1)
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"grid", "grid", 0},
		{"gird", "grid", 2},
		{"regoin", "region", 2},
		{"zip", "zips", 1},
		{"subnet", "subnets", 1},
		{"constants", "constnts", 1},
		{"list", "", 4},
		{"kitten", "sitting", 3},
		{long, "a", MaxLen},
		{"a", long, MaxLen},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}
