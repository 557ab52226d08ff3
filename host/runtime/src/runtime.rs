//! The runtime: one engine, one linker, the code cache and the epoch ticker.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

use crate::bindings::{PluginIndices, PluginPre};
use crate::cache::CodeCache;
use crate::error::{Call, ErrorKind, PluginError};
use crate::instance::PluginInstance;
use crate::sandbox::HostState;
use crate::{Limits, Metadata, RuntimeConfig};

/// Interfaces a plugin may import. All are linked with a context that grants nothing.
const PROVIDED_IMPORTS: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "weir:plugin/hash@",
];

/// Set (to anything but `0`) to write `/tmp/perf-PID.map`, so `perf report` names the plugins'
/// compiled functions instead of showing bare addresses. A diagnostic; it costs a little per load.
pub const PERFMAP_VAR: &str = "WEIR_WASM_PERFMAP";

/// The interface a plugin exports.
const TRANSFORM: &str = "weir:plugin/transform@0.1.0";

/// Which plugin: the name and version it reports, and the sha256 of its component.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginId {
    pub name: String,
    pub version: String,
    /// Hex sha256 of the component bytes.
    pub digest: String,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (sha256:{})",
            self.name,
            self.version,
            &self.digest[..12.min(self.digest.len())]
        )
    }
}

/// Counters for what the runtime did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Components compiled by cranelift.
    pub compiled: u64,
    /// Components loaded from the disk cache without compiling.
    pub disk_cache_hits: u64,
    /// Loads served from this runtime's memory (same digest loaded before).
    pub memory_cache_hits: u64,
}

/// Linear memory a freed pooling slot keeps resident: zeroed in place with memset rather than
/// handed back to the kernel, so the next instance of the same plugin (one per task) reuses
/// its heap without faulting every page in again. On the engine bench this halved the job's
/// page faults, for about 50 MB more peak RSS.
const KEEP_RESIDENT_BYTES: usize = 64 << 20;

/// The plugin runtime. Cheap to share behind an `Arc`; safe to use from many threads.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    max_instances: u32,
    epoch_tick: Duration,
    cache: Option<CodeCache>,
    loaded: Mutex<HashMap<String, Plugin>>,
    compiled: AtomicU64,
    disk_cache_hits: AtomicU64,
    memory_cache_hits: AtomicU64,
}

impl Runtime {
    /// Builds the engine and linker, and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, PluginError> {
        let setup = |e: String| {
            PluginError::new(
                None,
                Call::Load,
                ErrorKind::InvalidComponent(format!("runtime setup: {e}")),
            )
        };
        let limits = config.limits;
        let mut pooling = PoolingAllocationConfig::default();
        let n = config.max_instances.max(1);
        pooling
            .total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n)
            .total_tables(n * 2)
            .total_stacks(n)
            .max_memory_size(limits.memory_bytes)
            .table_elements(100_000)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(64 << 10);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.stack_bytes)
            .memory_init_cow(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        if std::env::var_os(PERFMAP_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
            wasm.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm).map_err(|e| setup(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| setup(format!("{e:#}")))?;
        crate::imports::add_to_linker(&mut linker).map_err(|e| setup(format!("{e:#}")))?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(CodeCache::new(dir, &engine).map_err(|e| {
                setup(format!("cannot use cache directory {}: {e}", dir.display()))
            })?),
            None => None,
        };

        spawn_epoch_ticker(&engine, config.epoch_tick);
        Ok(Self {
            engine,
            linker,
            limits,
            max_instances: n,
            epoch_tick: config.epoch_tick,
            cache,
            loaded: Mutex::new(HashMap::new()),
            compiled: AtomicU64::new(0),
            disk_cache_hits: AtomicU64::new(0),
            memory_cache_hits: AtomicU64::new(0),
        })
    }

    /// The limits every instance runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What this runtime has compiled and loaded so far.
    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            disk_cache_hits: self.disk_cache_hits.load(Ordering::Relaxed),
            memory_cache_hits: self.memory_cache_hits.load(Ordering::Relaxed),
        }
    }

    /// Loads a component from a file.
    pub fn load_file(&self, path: &Path) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|e| {
            PluginError::new(
                None,
                Call::Load,
                ErrorKind::InvalidComponent(format!("cannot read {}: {e}", path.display())),
            )
        })?;
        self.load(&bytes)
    }

    /// Loads a component: from memory if loaded before, else from the disk cache, else compiled.
    /// Checks its imports and reads its metadata.
    pub fn load(&self, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(plugin) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
        {
            self.memory_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(plugin.clone());
        }
        let load_error = |kind| PluginError::new(None, Call::Load, kind);

        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, &digest));
        let component = match cached {
            Some(component) => {
                self.disk_cache_hits.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => {
                let component = Component::new(&self.engine, bytes)
                    .map_err(|e| load_error(ErrorKind::InvalidComponent(format!("{e:#}"))))?;
                self.compiled.fetch_add(1, Ordering::Relaxed);
                if let Some(cache) = &self.cache {
                    cache.put(&digest, &component);
                }
                component
            }
        };

        let component_type = component.component_type();
        let imports: Vec<String> = component_type
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = component_type
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        if let Some(import) = imports
            .iter()
            .find(|i| !PROVIDED_IMPORTS.iter().any(|p| i.starts_with(p)))
        {
            return Err(load_error(ErrorKind::ImportNotProvided {
                import: import.clone(),
            }));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            load_error(ErrorKind::ImportNotProvided {
                import: format!("{e:#}"),
            })
        })?;
        let not_a_plugin = |e: wasmtime::Error| load_error(ErrorKind::NotAPlugin(format!("{e:#}")));
        let indices = PluginIndices::new(&pre).map_err(not_a_plugin)?;
        let export = |name: &str| {
            component
                .get_export_index(None, TRANSFORM)
                .and_then(|transform| component.get_export_index(Some(&transform), name))
                .ok_or_else(|| {
                    load_error(ErrorKind::NotAPlugin(format!(
                        "no `{name}` function in an export `{TRANSFORM}`"
                    )))
                })
        };
        let process_index = export("process")?;
        let finish_index = export("finish")?;
        let pre = PluginPre::new(pre).map_err(not_a_plugin)?;

        let mut plugin = Plugin(Arc::new(PluginInner {
            id: PluginId {
                name: "(loading)".into(),
                version: String::new(),
                digest: digest.clone(),
            },
            metadata: None,
            imports,
            exports,
            pre,
            indices,
            process_index,
            finish_index,
            engine: self.engine.clone(),
            limits: self.limits.clone(),
            epoch_tick: self.epoch_tick,
            max_instances: self.max_instances,
        }));
        let metadata = plugin.instantiate()?.metadata()?;
        let inner = Arc::get_mut(&mut plugin.0).expect("no other handle to a plugin being loaded");
        inner.id.name = metadata.name.clone();
        inner.id.version = metadata.version.clone();
        inner.metadata = Some(metadata);
        tracing::debug!(plugin = %plugin.id(), "loaded plugin");

        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, plugin.clone());
        Ok(plugin)
    }
}

/// Increments the engine's epoch every `tick` until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch thread");
}

/// A loaded, pre-linked plugin. Cheap to clone; instantiate once per task.
#[derive(Clone)]
pub struct Plugin(pub(crate) Arc<PluginInner>);

pub(crate) struct PluginInner {
    pub(crate) id: PluginId,
    metadata: Option<Metadata>,
    imports: Vec<String>,
    exports: Vec<String>,
    pub(crate) pre: PluginPre<HostState>,
    pub(crate) indices: PluginIndices,
    pub(crate) process_index: ComponentExportIndex,
    pub(crate) finish_index: ComponentExportIndex,
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    pub(crate) epoch_tick: Duration,
    pub(crate) max_instances: u32,
}

impl Plugin {
    /// Name, version and digest.
    pub fn id(&self) -> &PluginId {
        &self.0.id
    }

    /// The metadata the plugin reported at load.
    pub fn metadata(&self) -> &Metadata {
        self.0.metadata.as_ref().expect("metadata is read at load")
    }

    /// The interfaces the component imports (all WASI, or it would not have loaded).
    pub fn imports(&self) -> &[String] {
        &self.0.imports
    }

    /// The interfaces the component exports, e.g. `weir:plugin/transform@0.1.0`.
    pub fn exports(&self) -> &[String] {
        &self.0.exports
    }

    /// A fresh instance, for one task.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        PluginInstance::new(self.0.clone())
    }

    /// A fresh instance with tighter limits than the runtime's (memory and stack stay at the
    /// runtime's values, which the engine fixes).
    pub fn instantiate_with(&self, limits: &Limits) -> Result<PluginInstance, PluginError> {
        PluginInstance::with_limits(self.0.clone(), limits.clone())
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Plugin").field(&self.0.id).finish()
    }
}
