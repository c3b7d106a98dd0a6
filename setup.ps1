<#
.SYNOPSIS
    One-time (and any-time) setup on Windows: virtualenv, dependencies, .env, database.
.DESCRIPTION
    Safe to run again: each step skips or repeats harmlessly.
      .\setup.ps1          set up, then print how to run and test
      .\setup.ps1 -Run     set up, then start the server
    Set $env:PYTHON to pick the interpreter the virtualenv is built from (default: py -3, else python).
    If scripts are blocked: powershell -ExecutionPolicy Bypass -File .\setup.ps1
#>
[CmdletBinding()]
param(
    [switch]$Run
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Set-Location -Path $PSScriptRoot

# $ErrorActionPreference does not cover native programs, so every one goes through here.
function Invoke-Native {
    param(
        [Parameter(Mandatory, Position = 0)][string]$FilePath,
        [Parameter(Position = 1)][string[]]$ArgumentList = @()
    )
    & $FilePath @ArgumentList
    if ($LASTEXITCODE -ne 0) {
        throw "'$FilePath $($ArgumentList -join ' ')' failed with exit code $LASTEXITCODE"
    }
}

$VenvPython = Join-Path $PSScriptRoot '.venv\Scripts\python.exe'

if (-not (Test-Path -Path $VenvPython)) {
    if ($env:PYTHON) {
        $BasePython = $env:PYTHON; $BaseArgs = @()
    } elseif (Get-Command -Name py -ErrorAction SilentlyContinue) {
        $BasePython = 'py'; $BaseArgs = @('-3')
    } elseif (Get-Command -Name python -ErrorAction SilentlyContinue) {
        $BasePython = 'python'; $BaseArgs = @()
    } else {
        throw 'Python 3 not found: install it from https://www.python.org/downloads/ (tick "Add to PATH").'
    }
    Write-Host "==> Creating virtualenv .venv with $BasePython"
    Invoke-Native $BasePython ($BaseArgs + @('-m', 'venv', '.venv'))
} else {
    Write-Host '==> Using existing virtualenv .venv'
}

Write-Host '==> Installing requirements (runtime, then what the tests and lint add)'
Invoke-Native $VenvPython @('-m', 'pip', 'install', '--upgrade', 'pip')
Invoke-Native $VenvPython @('-m', 'pip', 'install', '-r', 'requirements-dev.txt')
Write-Host '==> Installing the command-line client: .venv\Scripts\paas'
Invoke-Native $VenvPython @('-m', 'pip', 'install', '--no-deps', '-e', '.')

if (-not (Test-Path -Path '.env')) {
    Write-Host '==> Creating .env from .env.example'
    Copy-Item -Path '.env.example' -Destination '.env'
} else {
    Write-Host '==> Keeping existing .env'
}

Write-Host '==> Initialising the database'
Invoke-Native $VenvPython @('manage_db.py', 'init')
# The first admin and its API token, printed once, on a database without users.
Invoke-Native $VenvPython @('manage_db.py', 'create-user', 'admin', '--admin', '--if-no-users', '--password-file', 'instance/admin-password')

if ($Run) {
    Write-Host '==> Starting the server (Ctrl+C stops it)'
    & $VenvPython app.py
    exit $LASTEXITCODE
}

Write-Host ''
Write-Host 'Setup complete.'
Write-Host '  Run:   .\.venv\Scripts\Activate.ps1; python app.py'
Write-Host '  Test:  .\.venv\Scripts\python.exe -m pytest'
