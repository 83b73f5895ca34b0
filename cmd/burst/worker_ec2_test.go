package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/slicerburst/burst/internal/testimds"
	"github.com/slicerburst/burst/internal/testpy"
)

// ec2Instance is the instance id the fake metadata service reports.
const ec2Instance = "i-0123456789abcdef0"

type imdsKey struct{}

// TestEC2Scripts runs `burst worker --ec2` end to end on a filesystem
// store: testdata/ec2/*.txtar, each with an instance metadata service of
// its own on 127.0.0.1 (AWS_EC2_METADATA_SERVICE_ENDPOINT), which the
// script drives with the imds command.
func TestEC2Scripts(t *testing.T) {
	python := testpy.Python(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/ec2",
		Setup: func(env *testscript.Env) error {
			srv := testimds.New(ec2Instance)
			env.Defer(srv.Close)
			env.Values[imdsKey{}] = srv
			env.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.Endpoint())
			env.Setenv("INSTANCE", ec2Instance)
			env.Setenv("PYTHON", python)
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".data"))
			env.Setenv("BURST_STORE", filepath.Join(env.WorkDir, "store"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lastrun": cmdLastRun,
			"imds":    cmdIMDS,
		},
		RequireExplicitExec: true,
	})
}

// cmdIMDS drives the script's metadata service: imds spot posts a spot
// interruption notice (terminate, in two minutes), imds rebalance a
// rebalance recommendation, imds clear withdraws them; imds down makes
// it answer 503 and imds up heals it.
func cmdIMDS(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: imds spot|rebalance|clear|down|up")
	}
	srv := ts.Value(imdsKey{}).(*testimds.Server)
	switch args[0] {
	case "spot":
		srv.Spot("terminate", time.Now().Add(2*time.Minute))
	case "rebalance":
		srv.Rebalance(time.Now())
	case "clear":
		srv.Clear()
	case "down":
		srv.SetFault(testimds.Unavailable)
	case "up":
		srv.SetFault(testimds.NoFault)
	default:
		ts.Fatalf("usage: imds spot|rebalance|clear|down|up")
	}
}
