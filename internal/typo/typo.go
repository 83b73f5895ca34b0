// Package typo tells what a mistyped name probably meant, for "did you
// mean" hints in error messages about user input.
package typo

// Distance is the Levenshtein distance between a and b: the fewest
// one-byte insertions, deletions and substitutions that turn one into the
// other. Strings longer than MaxLen are simply far apart (MaxLen), so that
// hostile input costs little.
func Distance(a, b string) int {
	if len(a) > MaxLen || len(b) > MaxLen {
		return MaxLen
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// MaxLen is the longest string Distance measures.
const MaxLen = 64
