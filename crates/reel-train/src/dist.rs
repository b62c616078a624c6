//! Data parallelism: ranks each train on a shard of the global batch and average their
//! gradients with an all-reduce. MPI (the `mpi` cargo feature, over OpenMPI) connects ranks
//! started by `mpirun -n N reel train …`; one process is one rank.

use crate::error::{Result, TrainError};

/// What the trainer needs from a group of ranks.
pub trait Communicator {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Element-wise sum over all ranks, in place.
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()>;
    fn all_reduce_sum_f64(&self, data: &mut [f64]) -> Result<()>;
    /// Waits for every rank (e.g. until rank 0 has written a checkpoint).
    fn barrier(&self);
}

/// One process training alone.
pub struct Single;

impl Communicator for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) {}
}

/// The ranks an MPI launcher announced through the environment (OpenMPI, MPICH/Hydra, Slurm PMI).
fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"].iter().find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The communicator for this process: MPI when launched by `mpirun` with more than one rank.
pub fn from_environment() -> Result<Box<dyn Communicator>> {
    match launched_ranks() {
        Some(n) if n > 1 => mpi_communicator(n),
        _ => Ok(Box::new(Single)),
    }
}

#[cfg(not(feature = "mpi"))]
fn mpi_communicator(n: usize) -> Result<Box<dyn Communicator>> {
    Err(TrainError::Distributed(format!("launched as one of {n} ranks, but this reel was built without the `mpi` feature")))
}

#[cfg(feature = "mpi")]
fn mpi_communicator(n: usize) -> Result<Box<dyn Communicator>> {
    let comm = mpi_backend::Mpi::init()?;
    if comm.size() != n {
        return Err(TrainError::Distributed(format!("the launcher announced {n} ranks but MPI reports {}", comm.size())));
    }
    Ok(Box::new(comm))
}

#[cfg(feature = "mpi")]
mod mpi_backend {
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator as _, CommunicatorCollectives};

    use super::Communicator;
    use crate::error::{Result, TrainError};

    pub struct Mpi {
        _universe: Universe,
        world: SimpleCommunicator,
    }

    impl Mpi {
        pub fn init() -> Result<Self> {
            let universe = mpi::initialize().ok_or_else(|| TrainError::Distributed("MPI was already initialised".into()))?;
            let world = universe.world();
            Ok(Self { _universe: universe, world })
        }
    }

    impl Communicator for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
            let send = data.to_vec();
            self.world.all_reduce_into(&send[..], data, SystemOperation::sum());
            Ok(())
        }
        fn all_reduce_sum_f64(&self, data: &mut [f64]) -> Result<()> {
            let send = data.to_vec();
            self.world.all_reduce_into(&send[..], data, SystemOperation::sum());
            Ok(())
        }
        fn barrier(&self) {
            self.world.barrier();
        }
    }
}
