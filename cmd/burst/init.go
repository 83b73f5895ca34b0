package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/provision"
)

// initOptions are the inputs of burst init.
type initOptions struct {
	terraformDir string
	terraformBin string
	force        bool

	// Settings given as flags; they override the Terraform outputs.
	region          string
	store           string
	instanceProfile string
	securityGroups  []string
	subnets         []string
	ami             string
}

func newInitCmd(g *globalOptions) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write the cloud configuration, from burst's Terraform setup or from flags",
		Long: `Write burst's cloud configuration: the region, the run store bucket, the
workers' instance profile, security group and subnets that cloud runs use.

With --terraform DIR, the values are the outputs of the account setup in
burst's terraform/ folder, applied in DIR (burst runs terraform output -json
there; it changes nothing); the run store is then the whole bucket,
s3://BUCKET, as the workers' role may use only its runs/ and cas/. Without
--terraform, give every value as a flag; --store is the run store of cloud
runs, s3://BUCKET or s3://BUCKET/PREFIX. Flags given beside --terraform
override its outputs.

The file is $BURST_CONFIG, else burst/config.yaml in the user configuration
directory (~/.config on Linux), written with mode 0600. Settings that init
does not set (ami, instance_types, market, budget) are kept from an existing
file. A file that would change is only replaced with --force; init shows
what would change. Nothing is checked against AWS.`,
		Example: `  burst init --terraform ./terraform
  burst init --terraform ./terraform --force
  burst init --region eu-west-1 --store s3://my-bucket --instance-profile burst-worker \
      --security-group sg-0123456789abcdef0 --subnet subnet-0123456789abcdef0`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.store = g.store
			return runInit(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.terraformDir, "terraform", "", "read the settings from the Terraform outputs of burst's account setup applied in `DIR`")
	f.StringVar(&o.terraformBin, "terraform-bin", "terraform", "the terraform `PROGRAM` to run (a name on PATH or a path)")
	f.BoolVar(&o.force, "force", false, "replace an existing configuration that differs")
	f.StringVar(&o.region, "region", "", "AWS `REGION` of the workers and the bucket")
	f.StringVar(&o.instanceProfile, "instance-profile", "", "the workers' instance profile `NAME` (or ARN)")
	f.StringSliceVar(&o.securityGroups, "security-group", nil, "the workers' security group `ID` (repeat, or separate with commas, for several)")
	f.StringSliceVar(&o.subnets, "subnet", nil, "a subnet `ID` that workers launch into (repeat, or separate with commas, for several)")
	f.StringVar(&o.ami, "ami", "", "the worker image `ID` (default: the newest burst image of this burst's protocol in the region)")
	// --store is the global flag; here it is the run store of cloud runs.
	return cmd
}

func runInit(ctx context.Context, g *globalOptions, o initOptions) error {
	path, err := cloudConfigPath()
	if err != nil {
		return err
	}
	var next provision.Config
	old, oldErr := readCloudConfig(path)
	exists := !errors.Is(oldErr, provision.ErrNoConfig)
	if oldErr == nil {
		next = old // keep the settings that init does not set
	}

	source := "flags"
	if o.terraformDir != "" {
		tf, err := provision.ConfigFromTerraform(ctx, o.terraformBin, o.terraformDir)
		var ie *provision.InputError
		if errors.As(err, &ie) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		next.Region, next.Store, next.InstanceProfile = tf.Region, tf.Store, tf.InstanceProfile
		next.SecurityGroups, next.Subnets = tf.SecurityGroups, tf.Subnets
		source = "terraform output in " + o.terraformDir
	} else if o.region == "" && o.store == "" && o.instanceProfile == "" && o.securityGroups == nil && o.subnets == nil && o.ami == "" {
		return usageErrorf("burst init needs --terraform DIR, or the settings as flags: --region, --store, --instance-profile, --security-group, --subnet (see --help)")
	}
	if o.region != "" {
		next.Region = o.region
	}
	if o.store != "" {
		next.Store = o.store
	}
	if o.instanceProfile != "" {
		next.InstanceProfile = o.instanceProfile
	}
	if o.securityGroups != nil {
		next.SecurityGroups = o.securityGroups
	}
	if o.subnets != nil {
		next.Subnets = o.subnets
	}
	if o.ami != "" {
		next.AMI = o.ami
	}
	if err := next.Validate(); err != nil {
		var ce *provision.ConfigError
		if errors.As(err, &ce) {
			return usageErrorf("%s: %s", initSettingSource(ce.Field, o), ce.Msg)
		}
		return usageError{err}
	}

	switch {
	case oldErr == nil:
		changes := old.Diff(next)
		if len(changes) == 0 {
			fmt.Fprintf(g.io.Out, "%s is up to date; nothing changed\n", path)
			return nil
		}
		if !o.force {
			fmt.Fprintf(g.io.Err, "%s would change:\n", path)
			printChanges(g.io.Err, changes)
			return usageErrorf("%s holds a different configuration: rerun with --force to replace it", path)
		}
	case exists && !o.force:
		return usageErrorf("%s exists but is not a valid configuration (%v): rerun with --force to replace it", path, strings.TrimPrefix(oldErr.Error(), path+": "))
	}

	data, err := next.Marshal(fmt.Sprintf("burst cloud configuration, written by burst init from %s\non %s. See burst init --help.", source, time.Now().UTC().Format("2006-01-02 15:04 UTC")))
	if err != nil {
		return err
	}
	if err := provision.WriteConfigFile(path, data); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	if oldErr == nil {
		fmt.Fprintf(g.io.Out, "updated %s:\n", path)
		printChanges(g.io.Out, old.Diff(next))
	} else {
		fmt.Fprintf(g.io.Out, "wrote %s:\n", path)
		for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if !strings.HasPrefix(line, "#") {
				fmt.Fprintf(g.io.Out, "  %s\n", line)
			}
		}
	}
	fmt.Fprintf(g.io.Out, "next: burst image list shows the worker images in %s; burst image build builds one\n", next.Region)
	return nil
}

// initSettingSource names where a setting came from, for an error.
func initSettingSource(setting string, o initOptions) string {
	flags := map[string]string{
		"region": "--region", "store": "--store", "instance_profile": "--instance-profile",
		"security_groups": "--security-group", "subnets": "--subnet", "ami": "--ami",
	}
	if o.terraformDir == "" {
		if f, ok := flags[setting]; ok {
			return f
		}
		return setting
	}
	for _, m := range provision.TerraformOutputs {
		if m.Setting == setting {
			return fmt.Sprintf("%s (terraform output %s)", setting, m.Output)
		}
	}
	return setting
}

func printChanges(w io.Writer, changes []provision.ConfigChange) {
	show := func(s string) string {
		if s == "" {
			return "(unset)"
		}
		return s
	}
	for _, c := range changes {
		fmt.Fprintf(w, "  %s: %s -> %s\n", c.Field, show(c.Old), show(c.New))
	}
}
