package staging_test

import (
	"testing"

	"github.com/slicerburst/burst/staging"
	"github.com/slicerburst/burst/staging/storetest"
)

func TestFSStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) staging.Store {
		s, err := staging.OpenFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
