package staging

import "context"

// FailedStatuses reads the statuses of the failed tasks of p, the first
// limit in task order, without their stderr tails; none is an empty list.
func (r *Run) FailedStatuses(ctx context.Context, man *Manifest, p Progress, limit int) ([]Status, error) {
	failed := []Status{}
	for _, id := range man.Tasks {
		if len(failed) >= limit {
			break
		}
		if p.Finished[id] && !p.OKSet[id] {
			st, err := r.ReadStatus(ctx, id)
			if err != nil {
				return nil, err
			}
			st.StderrTail = ""
			failed = append(failed, *st)
		}
	}
	return failed, nil
}
