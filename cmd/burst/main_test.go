package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/slicerburst/burst/internal/testminio"
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
			env.Setenv("TERRAFORM", testTerraform(root))
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

// cmdLastRun sets an environment variable to the newest run in a store:
// lastrun VAR [STORE] sets the run's id when STORE is left out
// ($BURST_STORE), else its location (STORE/runs/ID).
func cmdLastRun(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: lastrun VAR [STORE]")
	}
	loc := ts.Getenv("BURST_STORE")
	if len(args) == 2 {
		loc = args[1]
	}
	g := &globalOptions{}
	store, err := g.openStore(context.Background(), loc)
	ts.Check(err)
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
	if len(args) == 2 {
		r, _ := staging.OpenRun(store, runs[0].id)
		ts.Setenv(args[0], r.Location())
		return
	}
	ts.Setenv(args[0], runs[0].id)
}

// TestS3Scripts runs the CLI end to end on a real S3 server (MinIO):
// testdata/s3/*.txtar, each with a bucket of its own in $BUCKET and the
// AWS configuration pointing at the server.
func TestS3Scripts(t *testing.T) {
	python := testpy.Python(t)
	srv := testminio.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // for lastrun, which opens the store in this process
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/s3",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PYTHON", python)
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".data"))
			for _, kv := range srv.Env() {
				k, v, _ := strings.Cut(kv, "=")
				env.Setenv(k, v)
			}
			env.Setenv("BUCKET", srv.NewBucket(t))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lastrun": cmdLastRun,
		},
		RequireExplicitExec: true,
	})
}
