package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/slicerburst/burst/images"
	"github.com/slicerburst/burst/internal/oneline"
	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

func newImageCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "List and build the worker images (AMIs) that cloud workers boot from",
		Long: `Cloud workers boot from a burst worker image: Ubuntu with 3D Slicer and burst
installed, built in your account with Packer. burst launches the newest
available image in the region whose protocol matches its own.`,
		Args: exactArgs(),
	}
	cmd.AddCommand(newImageListCmd(g), newImageBuildCmd(g))
	return cmd
}

// imageListOptions are the inputs of burst image list.
type imageListOptions struct {
	region string
	asJSON bool
}

func newImageListCmd(g *globalOptions) *cobra.Command {
	var o imageListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the burst worker images in the region, newest first",
		Long: fmt.Sprintf(`List the burst worker images that this account owns in the region, newest
first: their id, name, Slicer version, protocol, state and creation date.
Images are found by their tag burst:image = worker. This burst speaks
protocol %d and launches only images of that protocol.

The region is --region, else the configuration's (burst init), else the AWS
profile's or AWS_REGION.`, staging.Protocol),
		Example: `  burst image list
  burst image list --region eu-west-1 --json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageList(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringVar(&o.region, "region", "", "AWS `REGION` to list (default: the configuration's, else AWS_REGION)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the list as JSON")
	return cmd
}

func runImageList(ctx context.Context, g *globalOptions, o imageListOptions) error {
	region, err := g.cloudRegion(ctx, o.region)
	if err != nil {
		return err
	}
	api, err := g.ec2ClientIn(ctx, region)
	if err != nil {
		return err
	}
	list, err := images.List(ctx, api, images.ListOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", region, err)
	}
	if o.asJSON {
		if list == nil {
			list = []images.Image{}
		}
		return writeJSON(g.io.Out, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(g.io.Out, "no burst images in %s: burst image build builds one\n", region)
		return nil
	}
	tw := tabwriter.NewWriter(g.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AMI\tNAME\tSLICER\tPROTOCOL\tSTATE\tCREATED")
	usable := false
	for _, im := range list {
		created := "-"
		if !im.Created.IsZero() {
			created = im.Created.Local().Format("2006-01-02 15:04")
		}
		proto := "?"
		if im.Protocol > 0 {
			proto = strconv.Itoa(im.Protocol)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.ID, im.Name, orDash(im.SlicerVersion), proto, im.State, created)
		usable = usable || im.Protocol == staging.Protocol && im.State == images.StateAvailable
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !usable {
		fmt.Fprintf(g.io.Out, "none is an available image of protocol %d, which this burst speaks: burst image build builds one\n", staging.Protocol)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// imageBuildOptions are the inputs of burst image build.
type imageBuildOptions struct {
	region        string
	slicerSHA256  string
	slicerVersion string
	slicerURL     string
	burstBinary   string
	subnet        string
	instanceType  string
	vars          []string
	packerBin     string
	dryRun        bool
}

func newImageBuildCmd(g *globalOptions) *cobra.Command {
	var o imageBuildOptions
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build a worker image in your account with Packer",
		Long: fmt.Sprintf(`Build a burst worker image (an AMI) in the region with Packer, from the
template built into this burst (the repository's images/ folder): Ubuntu
22.04, 3D Slicer, and this burst binary, smoke-tested before the image is
registered. It takes 20 to 30 minutes, one c6i.large for that long, and the
image's snapshot costs about 25 US cents a month until it is deleted.

It needs Packer 1.7 or later on PATH (Debian's packer 1.6 cannot build it),
which installs its amazon plugin with packer init; and AWS credentials that
may run an instance and create an image (the same as packer's own: --profile,
AWS_PROFILE, ...). The Slicer download is checked against --slicer-sha256:
take it from a copy of the archive you trust.

The image is tagged with Slicer's version and protocol %d, the protocol of
this burst, so burst submit --cloud aws finds it. The burst installed is this
binary on linux/amd64, else --burst-binary.`, staging.Protocol),
		Example: `  burst image build --slicer-sha256 0123...cdef
  burst image build --region eu-west-1 --slicer-sha256 0123...cdef --dry-run
  burst image build --slicer-version 5.6.2 --slicer-url https://download.slicer.org/bitstream/ID --slicer-sha256 0123...cdef`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageBuild(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.region, "region", "", "AWS `REGION` to build in (default: the configuration's, else AWS_REGION)")
	f.StringVar(&o.slicerSHA256, "slicer-sha256", "", "SHA-256 of the Slicer archive (`HEX`, required)")
	f.StringVar(&o.slicerVersion, "slicer-version", "", "3D Slicer `VERSION` to install (default: the template's, 5.8.1); needs --slicer-url")
	f.StringVar(&o.slicerURL, "slicer-url", "", "download `URL` of the Slicer Linux amd64 archive of --slicer-version")
	f.StringVar(&o.burstBinary, "burst-binary", "", "the linux/amd64 burst `FILE` to install (default: this burst, when it is one)")
	f.StringVar(&o.subnet, "subnet", "", "subnet `ID` of the build instance (default: the default VPC)")
	f.StringVar(&o.instanceType, "instance-type", "", "instance `TYPE` of the build instance (default: c6i.large)")
	f.StringArrayVar(&o.vars, "var", nil, "another template variable, `NAME=VALUE` (repeatable; see images/variables.pkr.hcl)")
	f.StringVar(&o.packerBin, "packer-bin", "packer", "the packer `PROGRAM` to run (a name on PATH or a path)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the packer commands and change nothing")
	return cmd
}

var (
	sha256Re      = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	slicerVerRe   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	templateVarRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
)

func runImageBuild(ctx context.Context, g *globalOptions, o imageBuildOptions) error {
	vars, err := o.templateVars()
	if err != nil {
		return err
	}
	region, err := g.cloudRegion(ctx, o.region)
	if err != nil {
		return err
	}
	vars = append([][2]string{{"region", region}}, vars...)

	bin := o.burstBinary
	if bin == "" {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			return usageErrorf("this burst is for %s/%s and workers run linux/amd64: build one (GOOS=linux GOARCH=amd64 go build ./cmd/burst) and pass it with --burst-binary", runtime.GOOS, runtime.GOARCH)
		}
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("finding this burst binary: %w", err)
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return fmt.Errorf("--burst-binary: %w", err)
	}
	if err := images.CheckLinuxAMD64(bin); err != nil {
		return usageErrorf("--burst-binary %s: %v", bin, err)
	}
	vars = append(vars, [2]string{"burst_binary", bin}, [2]string{"burst_protocol", strconv.Itoa(staging.Protocol)})

	if o.dryRun {
		const tmpl = "TEMPLATE"
		init, build := images.PackerArgs(tmpl, vars)
		fmt.Fprintf(g.io.Out, "%s %s\n", o.packerBin, shellJoin(init))
		fmt.Fprintf(g.io.Out, "%s %s\n", o.packerBin, shellJoin(build))
		fmt.Fprintf(g.io.Out, "(%s: burst's image template, written to a temporary folder)\n", tmpl)
		return nil
	}

	packer, err := findPacker(ctx, o.packerBin)
	if err != nil {
		return err
	}
	err = images.Build(ctx, images.BuildSpec{
		Packer: packer, Vars: vars, Env: packerEnv(g), Stdout: g.io.Out, Stderr: g.io.Err,
		Starting: func(args []string) {
			fmt.Fprintf(g.io.Err, "burst: running %s %s\n", o.packerBin, shellJoin(args))
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.io.Out, "built: burst image list --region %s shows the new image\n", region)
	return nil
}

// templateVars checks the flags that become template variables, and
// returns them in a fixed order.
func (o imageBuildOptions) templateVars() ([][2]string, error) {
	if o.slicerSHA256 == "" {
		return nil, usageErrorf("--slicer-sha256 is required: the SHA-256 of the Slicer archive, from a copy you trust (see burst image build --help)")
	}
	if !sha256Re.MatchString(o.slicerSHA256) {
		return nil, usageErrorf("--slicer-sha256 %s is not a SHA-256 (64 hex digits)", oneline.Quote(o.slicerSHA256))
	}
	vars := [][2]string{{"slicer_sha256", strings.ToLower(o.slicerSHA256)}}
	if o.slicerVersion != "" {
		if !slicerVerRe.MatchString(o.slicerVersion) {
			return nil, usageErrorf("--slicer-version %s is not a release number such as 5.8.1", oneline.Quote(o.slicerVersion))
		}
		if o.slicerURL == "" {
			return nil, usageErrorf("--slicer-version needs --slicer-url, the download of that version's Linux archive")
		}
		vars = append(vars, [2]string{"slicer_version", o.slicerVersion})
	}
	if o.slicerURL != "" {
		if !strings.HasPrefix(o.slicerURL, "https://") {
			return nil, usageErrorf("--slicer-url %s is not an https:// URL", oneline.Quote(o.slicerURL))
		}
		vars = append(vars, [2]string{"slicer_url", o.slicerURL})
	}
	if o.subnet != "" {
		if !provision.ValidSubnetID(o.subnet) {
			return nil, usageErrorf("--subnet %s is not a subnet id such as subnet-0123456789abcdef0", oneline.Quote(o.subnet))
		}
		vars = append(vars, [2]string{"subnet_id", o.subnet})
	}
	if o.instanceType != "" {
		if !provision.ValidInstanceType(o.instanceType) {
			return nil, usageErrorf("--instance-type %s is not an instance type such as c6i.large", oneline.Quote(o.instanceType))
		}
		vars = append(vars, [2]string{"instance_type", o.instanceType})
	}
	own := map[string]string{
		"region": "--region", "slicer_sha256": "--slicer-sha256", "slicer_version": "--slicer-version",
		"slicer_url": "--slicer-url", "subnet_id": "--subnet", "instance_type": "--instance-type",
		"burst_binary": "--burst-binary", "burst_protocol": "",
	}
	for _, kv := range o.vars {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !templateVarRe.MatchString(name) {
			return nil, usageErrorf("--var %s: want NAME=VALUE", oneline.Quote(kv))
		}
		if flag, taken := own[name]; taken {
			if flag == "" {
				return nil, usageErrorf("--var %s: the image's protocol is always this burst's (%d)", name, staging.Protocol)
			}
			return nil, usageErrorf("--var %s: use %s", name, flag)
		}
		vars = append(vars, [2]string{name, value})
	}
	return vars, nil
}

// packerEnv is burst's environment for packer: no update check, and
// --profile as AWS_PROFILE.
func packerEnv(g *globalOptions) []string {
	env := append(os.Environ(), "CHECKPOINT_DISABLE=1")
	if g.profile != "" {
		env = append(env, "AWS_PROFILE="+g.profile)
	}
	return env
}

// findPacker finds packer and checks its version (see images.FindPacker);
// what is wrong with it is the user's to fix (exit 2).
func findPacker(ctx context.Context, name string) (string, error) {
	path, err := images.FindPacker(ctx, name)
	if err != nil {
		return "", usageError{err}
	}
	return path, nil
}

// shellJoin quotes args for a POSIX shell, so that a printed command can be
// pasted.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			quoted[i] = a
		} else {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

// cloudRegion is the AWS region of a cloud command: flag, else the
// configuration's (when there is one), else the AWS configuration's
// (AWS_REGION or the profile's).
func (g *globalOptions) cloudRegion(ctx context.Context, flag string) (string, error) {
	if flag != "" {
		if !provision.ValidRegion(flag) {
			return "", usageErrorf("--region %s is not an AWS region name such as us-east-1", oneline.Quote(flag))
		}
		return flag, nil
	}
	c, err := loadCloudConfig()
	if err == nil {
		return c.Region, nil
	}
	if !errors.Is(err, provision.ErrNoConfig) {
		return "", err
	}
	cfg, err := g.loadAWS(ctx)
	if err != nil {
		return "", err
	}
	if cfg.Region == "" {
		return "", usageErrorf("no AWS region: pass --region, run burst init, or set AWS_REGION")
	}
	return cfg.Region, nil
}

// ec2ClientIn builds an EC2 client for region with the standard AWS
// configuration otherwise (see awsConfig).
func (g *globalOptions) ec2ClientIn(ctx context.Context, region string) (images.DescribeImagesAPI, error) {
	cfg, err := g.loadAWS(ctx, config.WithRegion(region))
	if err != nil {
		return nil, err
	}
	return newEC2(cfg), nil
}
