package staging

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/slicerburst/burst/staging/pickle"
	"github.com/slicerburst/burst/staging/sweep"
)

// SweepInputs reads the sweep spec at path and expands it into the tasks'
// pickled inputs.
func SweepInputs(path string) ([]Input, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sweep spec: %v", err)
	}
	tasks, err := sweep.Expand(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	inputs := make([]Input, len(tasks))
	for i, t := range tasks {
		p, err := pickle.Marshal(t.Params)
		if err != nil {
			return nil, fmt.Errorf("%s: task %s: %v", path, t.ID, err)
		}
		inputs[i] = Input{ID: t.ID, Pickle: p}
	}
	return inputs, nil
}

// ReadInputsDir reads DIR/*.pkl, in name order; each must be a pickled
// dict.
func ReadInputsDir(dir string) ([]Input, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inputs: %v", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".pkl") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("inputs: no *.pkl files in %s", dir)
	}
	sort.Strings(names)
	inputs := make([]Input, 0, len(names))
	for _, name := range names {
		id := strings.TrimSuffix(name, ".pkl")
		if !ValidID(id) {
			return nil, fmt.Errorf("inputs: %s: task names may hold only letters, digits, '.', '_' and '-'", filepath.Join(dir, name))
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("inputs: %v", err)
		}
		v, err := pickle.Unmarshal(data)
		if err != nil {
			return nil, fmt.Errorf("inputs: %s is not a pickle: %v", filepath.Join(dir, name), err)
		}
		if _, ok := v.(*pickle.Dict); !ok {
			return nil, fmt.Errorf("inputs: %s holds a pickled %s; each input must be a dict", filepath.Join(dir, name), pickle.TypeName(v))
		}
		inputs = append(inputs, Input{ID: id, Pickle: data})
	}
	return inputs, nil
}
