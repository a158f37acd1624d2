#!/usr/bin/env Rscript
# A 2D Ising model in base R: the kind of external program `ensembles.Command` runs.
#
# Metropolis dynamics on an L x L square lattice with periodic boundaries and J = 1,
# updated in checkerboard half-sweeps with whole-matrix operations (no loop over sites),
# so L = 32 for 2000 sweeps takes well under a second. It takes the flags of the
# Inductiva tutorial's run_ising_model.R, plus --seed, and writes one CSV in long form:
#
#   temperature,sweep,M,E
#   3,110,0.0390625,-0.859375
#   ...
#
# `temperature` is the temperature as given, `sweep` the sweep number (recorded every
# --thin sweeps after --burn-in), `M` the magnetization per spin and `E` the energy per
# spin. Every temperature starts from the all-up lattice; the random stream is seeded
# once with set.seed(--seed), which takes integers up to 2^31 - 1 only (so ensembles
# runs this script with seed_bits = 31).
#
# Usage:
#   Rscript run_ising_model.R --temps "2.5,3.0" --grid-size 32 --n-sweeps 2000 \
#     --burn-in 100 --thin 10 --seed 42 --output results.csv

usage <- paste(
  "usage: Rscript run_ising_model.R --temps T1[,T2,...] --output FILE",
  "[--grid-size L] [--n-sweeps N] [--burn-in B] [--thin K] [--seed S]"
)

fail <- function(...) {
  message("run_ising_model.R: error: ", ..., "\n", usage)
  quit(save = "no", status = 2)
}

parse_args <- function(args) {
  opts <- list(
    "grid-size" = "32", "n-sweeps" = "2000", "burn-in" = "100", "thin" = "10",
    "seed" = NA, "temps" = NA, "output" = NA
  )
  i <- 1
  while (i <= length(args)) {
    arg <- args[[i]]
    if (!startsWith(arg, "--")) fail("unexpected argument '", arg, "'")
    key <- sub("^--", "", arg)
    if (grepl("=", key, fixed = TRUE)) {  # --flag=value
      value <- sub("^[^=]*=", "", key)
      key <- sub("=.*$", "", key)
    } else {
      if (i == length(args)) fail("flag --", key, " needs a value")
      i <- i + 1
      value <- args[[i]]
    }
    if (!key %in% names(opts)) fail("unknown flag --", key)
    opts[[key]] <- value
    i <- i + 1
  }
  whole <- function(key, min) {
    value <- suppressWarnings(as.numeric(opts[[key]]))
    if (is.na(value) || value != round(value) || value < min) {
      fail("--", key, " must be an integer >= ", min, ", got '", opts[[key]], "'")
    }
    value
  }
  if (is.na(opts$temps)) fail("--temps is required")
  if (is.na(opts$output)) fail("--output is required")
  temps <- suppressWarnings(as.numeric(strsplit(opts$temps, ",", fixed = TRUE)[[1]]))
  if (length(temps) == 0 || any(is.na(temps)) || any(temps <= 0)) {
    fail("--temps must be comma-separated positive numbers, got '", opts$temps, "'")
  }
  size <- whole("grid-size", 2)
  if (size %% 2 != 0) fail("--grid-size must be even (checkerboard updates), got ", size)
  n_sweeps <- whole("n-sweeps", 1)
  burn_in <- whole("burn-in", 0)
  thin <- whole("thin", 1)
  if (n_sweeps < burn_in + thin) fail("--n-sweeps must be at least --burn-in + --thin")
  list(
    temps = temps, size = size, n_sweeps = n_sweeps, burn_in = burn_in, thin = thin,
    seed = opts$seed, output = opts$output
  )
}

# Sum of the four neighbours of every site, periodic boundaries.
neighbour_sum <- function(s, up, down) {
  s[up, ] + s[down, ] + s[, up] + s[, down]
}

simulate <- function(temp, size, n_sweeps, burn_in, thin) {
  spins <- matrix(1L, size, size)
  up <- c(size, seq_len(size - 1))      # row/column above, wrapping
  down <- c(seq(2, size), 1)            # row/column below, wrapping
  parity <- outer(seq_len(size), seq_len(size), "+") %% 2
  colors <- list(parity == 0, parity == 1)
  # acceptance probability by s * h in -4..4 (dE = 2 s h), looked up by index s * h + 5
  accept <- pmin(1, exp(-2 * seq(-4, 4) / temp))
  recorded <- seq(burn_in + thin, n_sweeps, by = thin)
  mags <- numeric(length(recorded))
  energies <- numeric(length(recorded))
  n <- size * size
  k <- 0
  for (sweep in seq_len(n_sweeps)) {
    for (mask in colors) {
      s_h <- spins * neighbour_sum(spins, up, down)
      flip <- mask & (runif(n) < accept[s_h + 5])
      spins[flip] <- -spins[flip]
    }
    if (sweep > burn_in && (sweep - burn_in) %% thin == 0) {
      k <- k + 1
      mags[k] <- sum(spins) / n
      energies[k] <- -sum(spins * (spins[up, ] + spins[, up])) / n
    }
  }
  data.frame(temperature = temp, sweep = recorded, M = mags, E = energies)
}

main <- function() {
  opts <- parse_args(commandArgs(trailingOnly = TRUE))
  if (!is.na(opts$seed)) {
    # as R users write it: set.seed refuses values outside the 32-bit integer range
    set.seed(as.numeric(opts$seed))
  }
  results <- do.call(rbind, lapply(opts$temps, function(temp) {
    simulate(temp, opts$size, opts$n_sweeps, opts$burn_in, opts$thin)
  }))
  write.csv(results, opts$output, row.names = FALSE)
}

main()
