package staging

import (
	"context"
	"sort"
)

// ListRuns reads the progress of every run in store, newest first; a run
// without a manifest (being staged, being deleted, or not burst's) is left
// out.
func ListRuns(ctx context.Context, store Store) ([]Progress, error) {
	ids, err := store.ListDirs(ctx, "runs/")
	if err != nil {
		return nil, err
	}
	var list []Progress
	for _, id := range ids {
		run, err := OpenRun(store, id)
		if err != nil {
			continue
		}
		man, err := run.Manifest(ctx)
		if err != nil {
			continue // being staged, being deleted, or not burst's
		}
		p, err := run.ReadProgress(ctx, man)
		if err != nil {
			return nil, err
		}
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created.After(list[j].Created) })
	return list, nil
}
