//! `cargo xtask vagrant-check`: checks vagrant/Vagrantfile with vagrant.

use std::process::Command;

use anyhow::Result;

use crate::{Context, cmd, setup, step};

pub(crate) fn check(ctx: &Context) -> Result<()> {
    if cmd::probe(Command::new("vagrant").arg("--version")).is_none() {
        // vagrant is large, so only this verb installs it.
        setup::install_apt_packages(&["vagrant"])?;
    }
    let folder = ctx.workspace.join("vagrant");
    step!("validating {}", folder.join("Vagrantfile").display());
    cmd::run(
        Command::new("vagrant").args(["validate"]).current_dir(&folder),
        "fix vagrant/Vagrantfile as the message above says",
    )?;
    step!("vagrant/Vagrantfile is valid");
    Ok(())
}
