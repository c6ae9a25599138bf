"""The Temporal client side in one place: connecting, the calls callers make on a renewal journey,
namespace setup and the command-line runtime. Nothing here imports the workflows: journeys are
reached by the wire names in `renewals.journey_api`."""
