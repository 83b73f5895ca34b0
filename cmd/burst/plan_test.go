package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/slicerburst/burst/internal/testmoto"
	"github.com/slicerburst/burst/internal/testpy"
)

// TestPlanEC2Scripts runs burst plan end to end against moto's EC2 server:
// testdata/plan_moto/*.txtar, with the AWS configuration pointing at it.
// moto's catalog is AWS's; its spot prices are a canned $0.00001.
func TestPlanEC2Scripts(t *testing.T) {
	python := testpy.Python(t)
	srv := testmoto.Start(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/plan_moto",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PYTHON", python)
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".data"))
			env.Setenv("BURST_STORE", filepath.Join(env.WorkDir, "store"))
			for _, kv := range srv.Env() {
				k, v, _ := strings.Cut(kv, "=")
				env.Setenv(k, v)
			}
			return nil
		},
		RequireExplicitExec: true,
	})
}
