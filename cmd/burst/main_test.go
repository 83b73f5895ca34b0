package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/slicerburst/burst/internal/testpy"
	"github.com/slicerburst/burst/staging"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"burst": func() { os.Exit(run()) },
	})
}

// TestScripts runs the CLI end to end: testdata/script/*.txtar, each in a
// fresh work directory with its own run store, with real Python jobs.
func TestScripts(t *testing.T) {
	python := testpy.Python(t)
	root := testpy.ModuleRoot(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PYTHON", python)
			env.Setenv("EXAMPLES", filepath.Join(root, "examples"))
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".data"))
			env.Setenv("BURST_STORE", filepath.Join(env.WorkDir, "store"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lastrun": cmdLastRun,
		},
		RequireExplicitExec: true,
	})
}

// cmdLastRun sets an environment variable to the id of the newest run in
// $BURST_STORE: lastrun VAR
func cmdLastRun(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: lastrun VAR")
	}
	store, err := staging.OpenFS(ts.Getenv("BURST_STORE"))
	ts.Check(err)
	defer store.Close()
	ids, err := store.ListDirs(context.Background(), "runs/")
	ts.Check(err)
	type run struct {
		id      string
		created int64
	}
	var runs []run
	for _, id := range ids {
		r, _ := staging.OpenRun(store, id)
		m, err := r.Manifest(context.Background())
		if err != nil {
			continue
		}
		runs = append(runs, run{id, m.Created.UnixNano()})
	}
	if len(runs) == 0 {
		ts.Fatalf("no runs in %s", store.Location())
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].created > runs[j].created })
	ts.Setenv(args[0], runs[0].id)
}
