//! The command line, as clap derive types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reel_media::Rational;

/// Reel: train, generate, evaluate and serve text-to-video models.
///
/// Data (paths, JSON) goes to stdout; logs and progress bars go to stderr.
#[derive(Debug, Parser)]
#[command(name = "reel", version, propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); REEL_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// No progress bars.
    #[arg(short, long, global = true, env = "REEL_QUIET")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a video from text: a prompt, or a JSON request (docs/generate.md).
    Generate(Box<GenerateArgs>),
    /// Inspect video files.
    #[command(subcommand)]
    Video(VideoCommand),
    /// Make and inspect data sets (Shapes World).
    #[command(subcommand)]
    Data(DataCommand),
    /// Inspect and run models in the diffusers layout.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train a model from a TOML run config (see docs/training.md), or export a run.
    Train(TrainArgs),
    /// Evaluate clips: prompt adherence, temporal quality, reports, comparisons (docs/eval.md).
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Measure speed and memory.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `reel generate "PROMPT" [-o out.mp4]` or `reel generate --request req.json` (`-` for stdin).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to make, in plain text; durations ("3 seconds"), rates ("at 12 fps"), sizes
    /// ("128x128", "square video"), styles, camera motions, moods and themes are read from it.
    pub prompt: Option<String>,
    /// A JSON request instead of a prompt (`-` reads stdin).
    #[arg(long)]
    pub request: Option<PathBuf>,
    /// Output file; its extension picks the format (default: a name from the prompt, .mp4).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Model: shapes-v1 (bundled, the default) or a diffusers-layout folder.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// flat, outline or pixel.
    #[arg(long)]
    pub style: Option<String>,
    /// static, pan-left, pan-right, zoom-in or zoom-out.
    #[arg(long)]
    pub camera: Option<String>,
    /// neutral, cheerful or gloomy.
    #[arg(long)]
    pub mood: Option<String>,
    /// black, gray, night or sand.
    #[arg(long)]
    pub theme: Option<String>,
    #[arg(long)]
    pub width: Option<u32>,
    #[arg(long)]
    pub height: Option<u32>,
    /// Frame count (the model makes 1 + 4·k).
    #[arg(long, conflicts_with = "duration")]
    pub frames: Option<u32>,
    /// Seconds (rounded to the nearest frame count the model makes).
    #[arg(long)]
    pub duration: Option<f64>,
    #[arg(long)]
    pub fps: Option<f64>,
    /// mp4, webm, avi, gif or png (a folder of frames).
    #[arg(long)]
    pub format: Option<String>,
    /// The same seed gives the same video (on any thread count). Default 0.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Denoising steps.
    #[arg(long)]
    pub steps: Option<u32>,
    /// Classifier-free guidance scale (1 or less: none).
    #[arg(long)]
    pub guidance: Option<f64>,
    /// Steps of a first pass that makes the first frame, before the clip is made from it
    /// (0: the whole clip at once; default: the model's).
    #[arg(long)]
    pub first_frame_steps: Option<u32>,
    /// With a model that has a layout planner: the noise level (0–1) its planned layout is
    /// noised to before denoising; lower keeps more of the layout, 0 generates from noise
    /// alone (default: the model's).
    #[arg(long)]
    pub layout_strength: Option<f64>,
    /// With a layout: make the clip twice, the second time from the first's first frame with
    /// the planned objects put back as painted (true or false; default: the model's).
    #[arg(long)]
    pub layout_first_frame: Option<bool>,
    /// With a layout: how far (0–1) each denoising step is pulled toward it, fading as the
    /// steps go (0: not at all; default: the model's).
    #[arg(long)]
    pub layout_guidance: Option<f64>,
    /// With a layout: the pixels (0-8) the model's VAE wears off an object's edge by the last
    /// frame, made up by painting the layout's objects wider over the clip (0: as planned;
    /// default: the model's).
    #[arg(long)]
    pub layout_erosion: Option<f64>,
    /// With a layout: how many times (0-4) the painted layout goes through the model's VAE
    /// and each object's outline is corrected by what the round trip lost (0: as planned;
    /// default: the model's).
    #[arg(long)]
    pub layout_refine: Option<u32>,
    /// euler or unipc.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Print path, seed, timings and settings as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score captioned clips against their labels, from pixels only; with --model, generate
    /// the clips first.
    Adherence {
        /// A manifest.jsonl (`reel data synth`'s format: file, caption, labels per line).
        #[arg(long, required_unless_present = "model", conflicts_with = "model")]
        manifest: Option<PathBuf>,
        /// Generate one clip per prompt with this model (shapes-v1 or a folder) into --out, then score them.
        #[arg(long, requires = "out")]
        model: Option<String>,
        /// With --model: prompts from this Shapes World split (world seed --seed).
        #[arg(long, value_enum, default_value_t = SplitArg::Holdout, conflicts_with = "prompts")]
        split: SplitArg,
        /// With --model: all scenes, or only the spec's scoring case (one object, static camera,
        /// flat style, neutral mood) — the quality targets' prompts.
        #[arg(long, value_enum, default_value_t = ScenesArg::All, conflicts_with = "prompts")]
        scenes: ScenesArg,
        /// With --model: prompts from a JSON-lines file with caption and labels per line
        /// (`reel data samples` writes it; manifests work too).
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// With --model: how many clips.
        #[arg(long, default_value_t = 64)]
        samples: usize,
        /// With --model: Shapes World seed of the prompts; clip i is generated with seed + i.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// With --model: denoising steps (default: the model's).
        #[arg(long)]
        steps: Option<u32>,
        /// Save the full results (every clip's checks and metrics) as DIR/evaluation.json.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print one JSON object on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Also measure the Fréchet distance of the clips' features to this reference set
        /// (a manifest.jsonl, an evaluation, or a folder of videos), e.g. real Shapes World clips.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Feature network for --reference (default: the bundled Shapes World network; see `reel eval fvd`).
        #[arg(long, requires = "reference")]
        features: Option<PathBuf>,
    },
    /// Write report.html (self-contained), report.md, report.json and contact sheets.
    Report {
        /// An evaluation (DIR or DIR/evaluation.json) or a manifest.jsonl, evaluated first.
        path: PathBuf,
        /// Output directory (default: <evaluation dir>/report).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Most clips shown with frames.
        #[arg(long, default_value_t = 64)]
        max_clips: usize,
    },
    /// Put two evaluations of the same prompts side by side.
    Compare {
        /// First evaluation (or manifest).
        a: PathBuf,
        /// Second evaluation (or manifest), made from the same prompts and seeds.
        b: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Most clips shown with frames.
        #[arg(long, default_value_t = 64)]
        max_clips: usize,
    },
    /// Fréchet distance between the video features of two clip sets (FVD-style).
    Fvd {
        /// Reference clips: a manifest.jsonl, an evaluation, or a folder of videos.
        a: PathBuf,
        /// Clips to compare with them (same kinds of input).
        b: PathBuf,
        /// Feature network: the bundled Shapes World network (default), a folder written by
        /// `reel eval features train`, or I3D weights (.safetensors, the PyTorch port's names)
        /// for FVD proper.
        #[arg(long)]
        features: Option<PathBuf>,
        /// Which I3D output is the embedding: the class logits (the original FVD) or the pooled features.
        #[arg(long, value_enum, default_value_t = I3dLayerArg::Logits)]
        i3d_layer: I3dLayerArg,
        /// Clips per forward pass.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Train the Shapes World feature network that `reel eval fvd` uses by default.
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// Measure the scorer itself on Shapes World clips, clean and degraded.
    Robustness {
        /// Clips to score per condition.
        #[arg(long, default_value_t = 200)]
        count: u64,
        #[command(flatten)]
        world: WorldArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FeaturesCommand {
    /// Train a network on Shapes World clips rendered on the fly and write it to --out
    /// (config.json, model.safetensors, training.json).
    Train {
        /// Output folder (must not exist).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1500)]
        steps: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        /// Shapes World seed of the training clips (the held-out check uses seed + 1).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Held-out clips the finished network is checked on.
        #[arg(long, default_value_t = 256)]
        eval_clips: usize,
        /// Damage half of the training clips a little (blur, noise): for a classifier of
        /// generated clips, not for Fréchet distances (it would learn to ignore the damage).
        #[arg(long)]
        augment: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum I3dLayerArg {
    Logits,
    Pool,
}

impl From<I3dLayerArg> for reel_eval::features::I3dLayer {
    fn from(l: I3dLayerArg) -> Self {
        match l {
            I3dLayerArg::Logits => Self::Logits,
            I3dLayerArg::Pool => Self::Pool,
        }
    }
}

/// `reel train CONFIG.toml [--out DIR] [--resume] [--max-steps N]` or `reel train export RUN DIR`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TrainArgs {
    /// The run config (configs/smoke.toml is a complete example).
    #[arg(required = true)]
    pub config: Option<PathBuf>,
    /// Run directory (default: runs/<config name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its newest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Stop cleanly after this step, with a checkpoint (exit 0).
    #[arg(long)]
    pub max_steps: Option<u64>,
    #[command(subcommand)]
    pub command: Option<TrainCommand>,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Write a run's newest checkpoint as a diffusers-layout model directory.
    Export {
        /// The run directory.
        run: PathBuf,
        /// The model directory to write (replaced if it exists).
        out: PathBuf,
        /// Export the raw weights instead of the EMA weights.
        #[arg(long)]
        raw: bool,
        /// VAE runs: clips of the run's data to measure the latents' per-channel mean and std on
        /// (written as latents_mean / latents_std; 0 leaves them empty). A run that froze the
        /// encoder of a VAE with statistics keeps them.
        #[arg(long, default_value_t = 64)]
        latent_stats: usize,
    },
    /// Train a model's layout planner (text → where each object is, how big, what colour, what shape) on
    /// Shapes World train-split scenes and write it into MODEL/planner/ (docs/planner.md).
    Planner {
        /// The model folder (its tokenizer is the planner's vocabulary).
        model: PathBuf,
        /// Train-split scenes to learn from.
        #[arg(long, default_value_t = 20_000)]
        scenes: u64,
        /// Optimizer steps (minibatches of 512 objects).
        #[arg(long, default_value_t = 3_000)]
        steps: usize,
        /// Seed of the initial weights and the minibatches.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Cells a side of each object's planned silhouette (what it looks like, painted in
        /// its layout); 0 plans none and objects are painted as discs.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(0..=64))]
        silhouette: u16,
        /// Also make this the model's default `layout_strength` (0-1; the noise level its
        /// layouts are denoised from, docs/planner.md); without it the model's default stays.
        #[arg(long)]
        layout_strength: Option<f64>,
        /// Also make this the model's default `layout_first_frame` (docs/generate.md).
        #[arg(long)]
        layout_first_frame: Option<bool>,
        /// Also make this the model's default `layout_guidance` (0-1, docs/generate.md).
        #[arg(long)]
        layout_guidance: Option<f64>,
        /// Also make this the model's default `layout_erosion` (pixels, 0-8, docs/generate.md).
        #[arg(long)]
        layout_erosion: Option<f64>,
        /// Also make this the model's default `layout_refine` (round trips, 0-4, docs/generate.md).
        #[arg(long)]
        layout_refine: Option<u32>,
    },
}

/// Which part of a model `reel model run` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ComponentArg {
    /// Inputs `hidden_states`, `timestep`, `encoder_hidden_states` (and `fps` if conditioned); output `sample`.
    Transformer,
    /// Input `sample` (`[B, 3, 4k+1, H, W]` in [-1, 1]); outputs `mean`, `logvar`.
    VaeEncode,
    /// Input `latents` (as the VAE produces them, before normalisation); output `sample`.
    VaeDecode,
    /// Inputs `input_ids`, `attention_mask` (optional: all ones); output `last_hidden_state`.
    TextEncoder,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// List a model's components, classes, parameter counts and dtypes.
    Info {
        /// A model folder (model_index.json), one component folder, or shapes-v1 (the bundled model).
        dir: PathBuf,
        /// Print JSON (with every component's config) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run one component on tensors from a safetensors file and write its outputs.
    Run {
        /// A model folder, one component folder, or shapes-v1 (the bundled model).
        dir: PathBuf,
        #[arg(long, value_enum)]
        component: ComponentArg,
        /// Input tensors (safetensors).
        #[arg(long)]
        inputs: PathBuf,
        /// Where to write the output tensors (safetensors).
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum VideoCommand {
    /// Print a video's container, codec, size, frame rate, frame count and duration.
    Info {
        /// A video file (MP4, WebM, AVI, GIF) or a folder of PNG frames.
        file: PathBuf,
        /// Print JSON instead of aligned text.
        #[arg(long)]
        json: bool,
    },
    /// Tile a video's frames into one PNG image (a contact sheet).
    Sheet {
        /// A video file or a folder of PNG frames.
        file: PathBuf,
        /// Where to write the PNG.
        #[arg(short, long)]
        out: PathBuf,
        /// Frames per row.
        #[arg(long, default_value_t = 9)]
        columns: usize,
        /// Keep every n-th frame only.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        every: u64,
    },
}

/// Output formats, as `--format` accepts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// MP4 with H.264 video.
    Mp4,
    /// WebM with AV1 video.
    Webm,
    /// AVI with Motion JPEG video.
    Avi,
    /// Animated GIF.
    Gif,
    /// A folder of PNG frames.
    Png,
}

impl From<FormatArg> for reel_media::VideoFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Mp4 => Self::Mp4,
            FormatArg::Webm => Self::Webm,
            FormatArg::Avi => Self::Avi,
            FormatArg::Gif => Self::Gif,
            FormatArg::Png => Self::Png,
        }
    }
}

/// Which held-out side of Shapes World to draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// No held-out (colour, shape, motion) triple.
    Train,
    /// Only held-out triples.
    Holdout,
    /// Any triple.
    All,
}

/// Which Shapes World scenes to draw, besides the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenesArg {
    /// Every scene: one or two objects, any theme, camera, style and mood.
    All,
    /// The spec's scoring case: one object, static camera, flat style, neutral mood.
    Scoring,
}

impl From<ScenesArg> for reel_data::Scenes {
    fn from(s: ScenesArg) -> Self {
        match s {
            ScenesArg::All => Self::All,
            ScenesArg::Scoring => Self::Scoring,
        }
    }
}

impl From<SplitArg> for reel_data::Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => Self::Train,
            SplitArg::Holdout => Self::Holdout,
            SplitArg::All => Self::All,
        }
    }
}

/// The Shapes World clip shape shared by the data commands.
#[derive(Debug, Args)]
pub struct WorldArgs {
    /// Frame width in pixels (even, 16..=1920).
    #[arg(long, default_value_t = 64)]
    pub width: u32,
    /// Frame height in pixels (even, 16..=1920).
    #[arg(long, default_value_t = 64)]
    pub height: u32,
    /// Frames per clip.
    #[arg(long, default_value_t = 17)]
    pub frames: u32,
    /// Frame rate: 8, 24000/1001 or 29.97.
    #[arg(long, default_value = "8")]
    pub fps: Rational,
    /// Which triples objects are drawn from.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Which scenes: all, or only the spec's scoring case (one object, static camera, flat
    /// style, neutral mood) that the quality targets are measured on.
    #[arg(long, value_enum, default_value_t = ScenesArg::All)]
    pub scenes: ScenesArg,
    /// Seed of the whole data set; clip i of seed s is always the same.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Render Shapes World clips to video files plus a manifest.jsonl.
    Synth {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of clips.
        #[arg(long)]
        count: u64,
        #[command(flatten)]
        world: WorldArgs,
        /// Video format of each clip.
        #[arg(long, value_enum, default_value_t = FormatArg::Mp4)]
        format: FormatArg,
        /// Encoder quality, 1..=100.
        #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
        quality: u8,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print captions and labels of Shapes World clips as JSON lines (no rendering).
    Samples {
        /// Number of clips.
        #[arg(long, default_value_t = 8)]
        count: u64,
        /// First clip index.
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[command(flatten)]
        world: WorldArgs,
    },
    /// Encode videos (or images, or Shapes World clips) to VAE latents, and captions to text
    /// embeddings, in a sharded cache that `data.source = "cache"` trains from.
    Cache {
        /// A folder of captioned videos (manifest.jsonl/.csv or .txt captions); omit for Shapes World.
        input: Option<PathBuf>,
        /// A model directory with vae/ (and text_encoder/ + tokenizer/ for --text).
        #[arg(long)]
        model: PathBuf,
        /// The cache folder to create.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 64)]
        width: u32,
        #[arg(long, default_value_t = 64)]
        height: u32,
        #[arg(long, default_value_t = 17)]
        frames: u32,
        /// Frame-rate set (CogVideo's rule picks the lowest that yields the length); repeatable.
        #[arg(long)]
        fps: Vec<f64>,
        /// Also cache text embeddings (for runs whose text encoder is frozen).
        #[arg(long)]
        text: bool,
        /// Tokens per caption (with --text).
        #[arg(long, default_value_t = 32)]
        max_text_len: usize,
        /// Examples per shard.
        #[arg(long, default_value_t = 256)]
        shard_size: usize,
        /// Shapes World clips to cache (without INPUT).
        #[arg(long, default_value_t = 256)]
        count: u64,
        /// Shapes World: share of clips from the scoring case (one object, static camera, flat
        /// style, neutral mood) rather than every kind of scene (a config's `data.scoring_share`).
        #[arg(long, default_value_t = 0.0)]
        scoring_share: f64,
        /// Shapes World: the world seed (a config's `data.shapes_seed`); caches made with
        /// different seeds hold different clips.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// What a model benchmark runs on.
#[derive(Debug, Args)]
pub struct ModelBenchArgs {
    /// A model or component folder; without it, `--config` with random weights.
    pub dir: Option<PathBuf>,
    /// A component config.json to build with random weights (when no DIR is given).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Video frames (4k+1); the latent has 1 + (frames − 1)/4.
    #[arg(long, default_value_t = 17)]
    pub frames: usize,
    #[arg(long, default_value_t = 64)]
    pub height: usize,
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed runs after one warm-up run.
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Skip the warm-up run (for very long runs).
    #[arg(long)]
    pub no_warmup: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time transformer forward passes and report peak memory (JSON on stdout).
    Transformer {
        #[command(flatten)]
        model: ModelBenchArgs,
        /// Text tokens per prompt.
        #[arg(long, default_value_t = 32)]
        text_len: usize,
    },
    /// Time VAE decoding (or encoding) and report peak memory (JSON on stdout).
    Vae {
        #[command(flatten)]
        model: ModelBenchArgs,
        /// Encode pixels instead of decoding latents.
        #[arg(long)]
        encode: bool,
    },
    /// Write a long synthetic video and report speed and peak memory (JSON on stdout).
    Video {
        /// Output file; its extension picks the format unless --format is given.
        #[arg(long, default_value = "bench.mp4")]
        out: PathBuf,
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        #[arg(long, default_value_t = 2000)]
        frames: u64,
        #[arg(long, default_value_t = 256)]
        width: u32,
        #[arg(long, default_value_t = 256)]
        height: u32,
        #[arg(long, default_value = "24")]
        fps: Rational,
        /// Keep the written file (it is deleted by default).
        #[arg(long)]
        keep: bool,
    },
}
